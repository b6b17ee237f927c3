"""Work in background threads, so that decoding, the model and writing overlap:
an iterator produced ahead of its consumer, and ordered writing of results."""
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

_END = object()


def in_background(items, depth):
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the consumer.
    An exception in the thread is raised in the consumer."""
    buffer = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(entry):
        """Put ``entry`` in the buffer unless the consumer has stopped; whether it went in."""
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not hand_over((item, None)):
                    return
            hand_over((_END, None))
        except BaseException as error:  # handed to the consumer, who raises it
            hand_over((_END, error))

    thread = threading.Thread(target=produce, name="decode", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundWriter:
    """Runs drawing and writing in one background thread, in order, with few images in flight."""

    def __init__(self, in_flight=8):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write")
        self.pending = deque()
        self.in_flight = in_flight

    def submit(self, function, *args):
        self.pending.append(self.pool.submit(function, *args))
        while len(self.pending) > self.in_flight:
            self.pending.popleft().result()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(cancel_futures=True)
