"""The console's Schedules page in headless Chromium, served by a real `littleflow serve --api`
(whose engine fires the schedules) on a real Redis: next ticks, the latest runs with their
states, pause, resume and run now, and the list of the workflows a schedule started.
Screenshots go to artifacts/console/."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect
from test_console import ADMIN, ARTIFACTS, CHROMIUM, READER, browser, guarded_serve, page, serve  # noqa: F401


def add(base: str, name: str, headers: dict | None = None, **options) -> None:
    answer = httpx.post(f"{base}/schedules", json={"name": name, **options}, headers=headers)
    assert answer.status_code == 201, answer.text


def test_the_schedules_page(serve, page):
    add(serve, "beat", flow="@flow indexing\nindex", every="1s")
    add(serve, "nightly", flow="@flow nightly\nnotify", cron="0 2 * * *", timezone="Europe/Paris")
    page.goto(f"{serve}/console/")
    page.get_by_role("link", name="Schedules").click()
    beat, nightly = page.locator('tr[data-schedule="beat"]'), page.locator('tr[data-schedule="nightly"]')
    expect(beat).to_contain_text("every 1s")
    expect(nightly).to_contain_text("cron 0 2 * * * (Europe/Paris)")
    expect(nightly.locator("td.ticks time")).to_have_count(3)
    expect(nightly).to_contain_text("none yet")
    expect(beat.locator("td.runs .badge.status-finished").first).to_be_visible()  # (the engine fires it)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("header.bar").evaluate("bar => bar.scrollIntoView()")
    page.screenshot(path=ARTIFACTS / "schedules.png", clip={"x": 0, "y": 0, "width": 1400, "height": 300})
    beat.get_by_role("button", name="Pause").click()
    expect(beat.locator("td.ticks .badge")).to_have_text("paused")
    nightly.get_by_role("button", name="Run now").click()
    expect(page.locator("#toast")).to_contain_text("Started")
    expect(nightly.locator("td.runs .badge").first).to_be_visible()
    beat.get_by_role("button", name="Resume").click()
    expect(beat.locator("td.ticks time").first).to_be_visible()
    nightly.get_by_role("link", name="nightly").click()
    expect(page.locator(".filter")).to_contain_text("started by schedule nightly")
    expect(page.locator("tbody tr[data-id]")).to_have_count(1)
    page.locator("tbody tr[data-id] a").click()
    expect(page.locator("h1 .badge")).to_have_text("finished")


def test_a_reader_sees_schedules_without_their_buttons(guarded_serve, page):
    add(guarded_serve, "beat", headers={"Authorization": f"Bearer {ADMIN}"}, flow="index", every="1h")
    page.goto(f"{guarded_serve}/console/#/schedules")
    page.get_by_label("token").fill(READER)
    page.get_by_role("button", name="Sign in").click()
    row = page.locator('tr[data-schedule="beat"]')
    expect(row).to_contain_text("every 1h")
    expect(row.get_by_role("button", name="Pause")).to_be_hidden()
