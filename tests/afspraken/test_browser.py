"""The agreement pages in a real browser: headless Chromium against `ldn up`'s app on a loopback port.

Every page is opened, its key texts and elements asserted, the forms used (no JavaScript on the
pages: plain GET forms), and a screenshot taken and decoded to check that something was drawn.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ldn.core.config import CoreSettings
from ldn.core.storage import Database
from ldn.core.topology import Topology

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium (apt-get install chromium)"
)


# ---------------------------------------------------------------------------------------------
# A tiny PNG reader (zlib only): enough to tell a rendered page from a blank one.


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered rows of an 8-bit RGB/RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        offset = y * (stride + 1)
        kind, line = raw[offset], bytearray(raw[offset + 1 : offset + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def assert_rendered(path: Path, *, min_width: int = 800, min_height: int = 500) -> None:
    """The screenshot is a real page: big enough, many colours, not one colour almost everywhere."""
    width, height, rows = png_pixels(path.read_bytes())
    assert width >= min_width and height >= min_height, (width, height)
    channels = len(rows[0]) // width
    colours: Counter[bytes] = Counter()
    for row in rows[::4]:  # every 4th row is plenty and keeps this fast
        colours.update(row[i : i + 3] for i in range(0, len(row), channels * 2))
    total = sum(colours.values())
    dominant, count = colours.most_common(1)[0]
    assert len(colours) > 20, f"only {len(colours)} colours: blank page?"
    assert count / total < 0.97, f"{count / total:.0%} of the page is {dominant.hex()}"
    # The blue header band is drawn at the top.
    band = rows[5][: 3 * channels]
    assert band[:3] == bytes.fromhex("154273"), band.hex()


# ---------------------------------------------------------------------------------------------
# The network on a real port


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def served(
    settings: CoreSettings, topology: Topology, database: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """`ldn up`'s app (the whole embedded network) served by uvicorn in a thread."""
    import uvicorn

    from ldn.network.runtime import build_network

    monkeypatch.delenv("LDN_LAS_RELEASE", raising=False)
    monkeypatch.delenv("LDN_AFSPRAKENSTELSEL", raising=False)
    sock = _free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    network = build_network(settings, topology, database, base_url=base)
    config = uvicorn.Config(network.app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"{base}/afspraken"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def page(served: str) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


def _open(page: Any, url: str, h1: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    assert page.locator("h1").count() == 1
    assert h1 in page.locator("h1").inner_text()
    # Accessible basics on every page: language, landmarks, current page, captioned tables.
    assert page.locator("html").get_attribute("lang") == "nl"
    assert page.locator("main#inhoud").count() == 1
    assert page.locator("nav[aria-label='Hoofdmenu'] a").count() == 6
    assert page.locator("table:not(:has(caption))").count() == 0
    assert page.locator("th[scope]").count() == page.locator("th").count()


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_pages_render_in_chromium(served: str, page: Any, tmp_path: Path) -> None:
    base = served

    _open(page, f"{base}/", "Landelijk afsprakenstelsel")
    assert page.locator("nav a[aria-current='page']").inner_text() == "Overzicht"
    assert "1.1.0" in page.locator(".release-pill").inner_text()
    matrix = page.locator("table.matrix").first
    assert matrix.locator("tbody tr").count() == 4  # the four layers
    assert "Technisch" in matrix.inner_text() and "Normatief" in matrix.inner_text()
    assert page.locator("progress").count() == 4  # Twiin, Nuts, MedMij, AORTA/LSP
    shot = tmp_path / "overview.png"
    page.screenshot(path=str(shot))
    assert_rendered(shot)

    # Agreements by layer, plateau and status, through the filter form (a plain GET form).
    _open(page, f"{base}/agreements", "Afspraken")
    page.select_option("select[name=layer]", "juridisch")
    page.select_option("select[name=status]", "normative")
    page.click("form.filters button")
    page.wait_for_url("**/agreements?*layer=juridisch*")
    assert page.locator("section h2").all_inner_texts()[0].startswith("Juridisch")
    assert page.locator("section").count() == 1
    rows = page.locator("tbody tr")
    assert rows.count() >= 2
    assert set(rows.locator("td .badge").all_inner_texts()) == {"Normatief"}
    page.select_option("select[name=plateau]", "2028-2030")
    page.select_option("select[name=status]", "")
    page.select_option("select[name=release]", "2.0.0")
    page.click("form.filters button")
    page.wait_for_url("**release=2.0.0*")
    assert "LAS-JUR-OPTOUT-002" in page.locator("main").inner_text()

    # One agreement with its history: versions, releases and the text diff between versions.
    _open(page, f"{base}/agreements/LAS-TA-AUTH-002", "Access tokens")
    assert (
        page.locator("section[aria-labelledby=h-param] tbody tr").first.inner_text().startswith("access_token_lifetime")
    )
    versions = page.locator("article.version h3").all_inner_texts()
    assert [v.split()[1] for v in versions] == ["2.0.0", "1.1.0", "1.0.0"]
    assert page.locator("article.version pre.diff ins").count() >= 1
    assert "900 s" in page.locator("article.version").first.inner_text()
    shot = tmp_path / "agreement.png"
    page.screenshot(path=str(shot))
    assert_rendered(shot)
    page.click("section[aria-labelledby=h-rel] a:has-text('LAS-TA-AUTH-003')")  # references are links
    page.wait_for_url("**/agreements/LAS-TA-AUTH-003")

    # Release notes, and a diff chosen with the form.
    _open(page, f"{base}/releases", "Releases")
    assert page.locator("article.notes").count() == 3
    assert "Kortere tokens" in page.locator("article.notes").first.inner_text()
    page.select_option("select[name=from]", "1.0.0")
    page.select_option("select[name=to]", "1.1.0")
    page.click("form.filters button")
    page.wait_for_url("**/releases/1.0.0/diff/1.1.0")
    assert "Verschil tussen release 1.0.0 en 1.1.0" in page.locator("h1").inner_text()
    assert "LAS-TA-AUTH-003" in page.locator("section[aria-labelledby=h-added]").inner_text()

    _open(page, f"{base}/releases/1.1.0/diff/2.0.0", "Verschil")
    change = page.locator("article.change", has_text="LAS-TA-AUTH-002")
    assert "900" in change.locator("table").inner_text() and "600" in change.locator("table").inner_text()
    shot = tmp_path / "diff.png"
    page.screenshot(path=str(shot))
    assert_rendered(shot)

    # Temporary agreements with their expiry dates.
    _open(page, f"{base}/temporary", "Tussentijdse afspraken")
    rows = page.locator("tbody tr")
    assert rows.count() >= 4
    dates = [t.get_attribute("datetime") or "" for t in page.locator("tbody tr td:nth-child(4) time").all()]
    assert dates == sorted(dates) and all(len(d) == 10 for d in dates)
    assert "Vervangen" in page.locator("tbody tr", has_text="LAS-TA-ADDR-004").inner_text()

    # Harmonisation progress per existing agreement system.
    _open(page, f"{base}/harmonisation", "Harmonisatie")
    twiin = page.locator("section[aria-labelledby=h-voortgang] tbody tr", has_text="Twiin")
    assert twiin.locator("progress").get_attribute("value") == "100"
    matrix = page.locator("table.harmonisation")
    assert matrix.locator("tbody tr").count() == 7
    assert "Eigen afspraak" in matrix.inner_text() and "In transitie" in matrix.inner_text()
    shot = tmp_path / "harmonisation.png"
    page.screenshot(path=str(shot))
    assert_rendered(shot)

    _open(page, f"{base}/parameters", "Afgestemde parameters")
    network = page.locator("section[aria-labelledby=h-netwerk] tbody tr", has_text="access_token_lifetime")
    assert "LDN_AUTH_ACCESS_TOKEN_LIFETIME" in network.inner_text()
    assert "Volgt de afspraak" in network.inner_text()

    # Unknown pages answer in HTML with the reason.
    response = page.goto(f"{base}/agreements/LAS-TA-NOPE-001")
    assert response is not None and response.status == 404
    assert "no agreement LAS-TA-NOPE-001" in page.locator("[role=alert]").inner_text()


def test_png_reader_tells_blank_from_drawn(tmp_path: Path) -> None:
    """The screenshot check itself must fail on a blank image."""

    def png(width: int, height: int, pixel: bytes) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        raw = b"".join(b"\x00" + pixel * width for _ in range(height))
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")

    blank = tmp_path / "blank.png"
    blank.write_bytes(png(1000, 600, b"\xff\xff\xff"))
    width, height, rows = png_pixels(blank.read_bytes())
    assert (width, height, rows[0][:3]) == (1000, 600, b"\xff\xff\xff")
    with pytest.raises(AssertionError, match="colours"):
        assert_rendered(blank)
    small = tmp_path / "small.png"
    small.write_bytes(png(200, 100, b"\x15\x42\x73"))
    with pytest.raises(AssertionError):
        assert_rendered(small)
