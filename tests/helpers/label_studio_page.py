"""Label Studio's labelling page of one task, opened as a person opens it, in headless Chromium driven by
Playwright: sign in, open the task in the project's data manager, wait until the Regions panel lists
its regions, take a screenshot, and print the panel's rows (class and score as shown) as JSON.

A script, not a module the tests import: it runs in Label Studio's own environment, where the tests
install Playwright, and drives the system's Chromium (Playwright's own browser download cannot work
without internet).

    python label_studio_page.py URL CREDENTIALS PROJECT TASK SCREENSHOT
"""
import argparse
import json
import sys
from pathlib import Path

from playwright.sync_api import Error, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Headless as root (no sandbox), no GPU, and nothing that would reach the internet.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run"]
REGION = ".lsf-outliner-item"  # a row of the Regions panel


def credentials(path):
    """{name: value} of start.sh's credentials.env (the password stays off the command line)."""
    return dict(line.split("=", 1) for line in Path(path).read_text().splitlines() if "=" in line)


def rows(page):
    """{index: [class, score as shown]} of the Regions panel's rows on the page now."""
    return {int(row.locator(".lsf-outliner-item__index").inner_text()): [
        row.locator(".lsf-outliner-item__title").inner_text().strip(),
        row.locator(".lsf-outliner-item__control_type_score").inner_text().strip()]
        for row in page.locator(REGION).all()}


def regions(page, screenshot):
    """The Regions panel's rows, [[class, score as shown], ...] in its order, once they are shown (the
    screenshot then), scrolling down the panel, which renders only the rows in view."""
    page.locator(REGION).first.wait_for(timeout=120_000)
    page.wait_for_timeout(2000)  # the image and the other regions settle
    page.screenshot(path=screenshot)
    seen = {}
    while True:
        count = len(seen)
        seen.update(rows(page))
        if len(seen) == count:
            return [seen[index] for index in sorted(seen)]
        page.locator(REGION).last.scroll_into_view_if_needed()
        page.wait_for_timeout(500)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("url", "credentials", "project", "task", "screenshot"):
        parser.add_argument(name)
    args = parser.parse_args()
    user = credentials(args.credentials)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{args.url}/user/login/")
            page.fill("input[name=email]", user["LABEL_STUDIO_USERNAME"])
            page.fill("input[name=password]", user["LABEL_STUDIO_PASSWORD"])
            with page.expect_navigation():
                page.click("button[type=submit]")
            if "/user/login" in page.url:
                sys.exit(f"Label Studio refused the sign-in as {user['LABEL_STUDIO_USERNAME']}")
            page.goto(f"{args.url}/projects/{args.project}/data?task={args.task}")
            try:
                shown = regions(page, args.screenshot)
            except Error:
                page.screenshot(path=args.screenshot)  # what the page showed instead
                raise
        except Error as error:
            sys.exit(f"the labelling page of task {args.task}: {error}")
        finally:
            browser.close()
    print(json.dumps({"regions": shown}))


if __name__ == "__main__":
    main()
