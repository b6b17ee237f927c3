"""Benchmark: frame extraction (``python -m detflow.frames``) against the ffmpeg command line.

Both do the same job on the same generated 720p video in the same run: decode
every frame, keep every k-th, write it as JPEG; same number of files. ffmpeg's
JPEG quality is a quantiser scale (``-q:v``, 1 = best), OpenCV's a 0-100
quality: for each ffmpeg setting the bench uses the OpenCV quality whose mean
file size on sample frames is closest, and prints sizes and PSNR of both so
the pairing can be judged. The video is written once as MPEG-4 part 2 (what
OpenCV writes, as in the demo) and once as H.264 (what cameras and phones
write, encoded by ffmpeg). Each timing is the best of ``--repeats`` runs of
the command line, start-up included. Target: ratio (ffmpeg time / our time)
of at least 1.0.

Needs the ``ffmpeg`` program: ``sudo apt-get install -y ffmpeg`` (Debian,
Ubuntu), ``brew install ffmpeg`` (macOS) or ``conda install -c conda-forge
ffmpeg``.

    .venv/bin/python bench/frames.py [--seconds 20] [--every-nth 2]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from detflow.demo import generate_video
from machine import project_config

FFMPEG_QSCALES = (2, 1)
SAMPLE_FRAMES = 12


def require_ffmpeg():
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is not installed. Install it with `sudo apt-get install -y ffmpeg` (Debian/Ubuntu), "
                 "`brew install ffmpeg` (macOS) or `conda install -c conda-forge ffmpeg`, then run this again.")


def make_videos(folder, seconds, fps):
    """The 720p test video as MPEG-4 part 2 (OpenCV) and as H.264 (ffmpeg, libx264)."""
    mpeg4 = folder / "bench_mpeg4.mp4"
    generate_video(mpeg4, folder / "truth.csv", index=0, seed=1, seconds=seconds, fps=fps, width=1280, height=720,
                   classes=["grab", "drop"])
    h264 = folder / "bench_h264.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mpeg4), "-c:v", "libx264", "-preset", "medium",
                    "-crf", "20", "-pix_fmt", "yuv420p", str(h264)], check=True)
    return {"MPEG-4 part 2": mpeg4, "H.264": h264}


def sample_frames(video, every_nth):
    capture = cv2.VideoCapture(str(video))
    frames, index = [], 0
    while len(frames) < SAMPLE_FRAMES and capture.grab():
        if index % every_nth == 0:
            frames.append(capture.retrieve()[1])
        index += 1
    return frames


def jpeg_stats(frames, paths):
    """Mean file size (kB) and mean PSNR (dB) of JPEG files against the decoded frames."""
    sizes = [os.path.getsize(path) / 1000 for path in paths]
    psnr = [cv2.PSNR(frame, cv2.imread(str(path))) for frame, path in zip(frames, paths)]
    return float(np.mean(sizes)), float(np.mean(psnr))


def ffmpeg_command(video, out_dir, every_nth, qscale, limit=None):
    command = ["ffmpeg", "-v", "error", "-i", str(video), "-vf", rf"select=not(mod(n\,{every_nth}))",
               "-fps_mode", "vfr", "-qmin", "1", "-q:v", str(qscale)]
    if limit:
        command += ["-frames:v", str(limit)]
    return command + [str(out_dir / "%06d.jpg")]


def detflow_command(video, out_dir, every_nth, quality, threads, duplicate_threshold):
    """The stage's command keeping every ``every_nth`` frame of the whole video, no frame skipped as a
    duplicate (the stage's command line takes every option; the threshold is unused then)."""
    return [sys.executable, "-m", "detflow.frames", str(video), "--out-dir", str(out_dir),
            "--manifest", str(out_dir) + ".csv", "--every-nth", str(every_nth), "--fps", "none",
            "--start-s", "0", "--end-s", "none", "--max-frames", "none", "--skip-duplicates", "false",
            "--duplicate-threshold", str(duplicate_threshold), "--jpeg-quality", str(quality),
            "--threads", str(threads)]


def matching_quality(frames, video, folder, every_nth, qscale):
    """The OpenCV JPEG quality whose mean size on the sample frames is closest to ffmpeg's at ``qscale``."""
    out_dir = folder / "sample_ffmpeg"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    subprocess.run(ffmpeg_command(video, out_dir, every_nth, qscale, limit=len(frames)), check=True)
    ffmpeg_size = np.mean([os.path.getsize(path) for path in sorted(out_dir.iterdir())])

    def size(quality):
        return np.mean([len(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]) for frame in frames])

    return min(range(50, 101), key=lambda quality: abs(size(quality) - ffmpeg_size))


def timed(command, out_dir, repeats):
    """Best wall time of ``repeats`` runs of ``command`` into a fresh ``out_dir``; the files of the last run."""
    best = float("inf")
    for _ in range(repeats):
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best, sorted(path for path in out_dir.iterdir() if path.suffix == ".jpg")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of the generated 720p video")
    parser.add_argument("--fps", type=int, default=30, help="frame rate of the generated video")
    parser.add_argument("--every-nth", type=int, default=2, help="keep every k-th frame")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of detflow.frames")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command; the best time counts")
    args = parser.parse_args()
    require_ffmpeg()
    duplicate_threshold = project_config()["frames"]["duplicate_threshold"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"generating a {args.seconds:g} s 1280x720 video at {args.fps} fps ...", flush=True)
        videos = make_videos(folder, args.seconds, args.fps)
        frames_total = int(round(args.seconds * args.fps))
        print(f"{os.cpu_count()} CPUs; keep frames whose index is a multiple of {args.every_nth}, of {frames_total}; "
              f"detflow.frames with {args.threads} threads; best of {args.repeats}")
        for codec, video in videos.items():
            sample = sample_frames(video, args.every_nth)
            for qscale in FFMPEG_QSCALES:
                quality = matching_quality(sample, video, folder, args.every_nth, qscale)
                ffmpeg_time, ffmpeg_files = timed(ffmpeg_command(video, folder / "ffmpeg", args.every_nth, qscale),
                                                  folder / "ffmpeg", args.repeats)
                ours_time, our_files = timed(detflow_command(video, folder / "detflow", args.every_nth, quality,
                                                             args.threads, duplicate_threshold),
                                             folder / "detflow", args.repeats)
                if len(our_files) != len(ffmpeg_files):
                    sys.exit(f"different outputs: detflow {len(our_files)} files, ffmpeg {len(ffmpeg_files)}")
                ffmpeg_kb, ffmpeg_psnr = jpeg_stats(sample, ffmpeg_files[:len(sample)])
                our_kb, our_psnr = jpeg_stats(sample, our_files[:len(sample)])
                print(f"\n{codec}, {len(our_files)} JPEGs, ffmpeg -q:v {qscale} vs OpenCV quality {quality}:")
                print(f"  ffmpeg          {frames_total / ffmpeg_time:7.1f} frames/s decoded, "
                      f"{len(ffmpeg_files) / ffmpeg_time:6.1f} JPEG/s  ({ffmpeg_kb:.0f} kB, {ffmpeg_psnr:.1f} dB)")
                print(f"  detflow.frames  {frames_total / ours_time:7.1f} frames/s decoded, "
                      f"{len(our_files) / ours_time:6.1f} JPEG/s  ({our_kb:.0f} kB, {our_psnr:.1f} dB)")
                print(f"  ratio (ffmpeg time / detflow time): {ffmpeg_time / ours_time:.2f}x")


if __name__ == "__main__":
    main()
