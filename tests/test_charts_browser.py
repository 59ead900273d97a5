"""The charts render in a real browser: headless Chromium (Debian's `chromium`) screenshots the
SVG opened as a file and the same SVG as the data URL an image artifact carries, shown in an
<img> as the Prefect UI shows image artifacts. Both must draw the chart (not a blank or broken
image), at the size the chart asks for, and the same pixels."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from carbonshift.artifacts import svg_data_url
from carbonshift.charts import COLOURS, Mark, plan_chart_svg, run_chart_svg
from tests.helpers import T0, series_at

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 720, 300
H = timedelta(hours=1)


def screenshot(url: str, out: Path, profile: Path) -> Image.Image:
    assert CHROMIUM is not None
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--user-data-dir={profile}",
         f"--window-size={WIDTH + 80},{HEIGHT + 80}", f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=120)
    return Image.open(out).convert("RGB")


def drawn_box(image: Image.Image) -> tuple[int, int, int, int]:
    """The bounding box of everything not white."""
    white = Image.new("RGB", image.size, (255, 255, 255))
    box = ImageChops.difference(image, white).getbbox()
    assert box is not None, "blank screenshot: the chart did not render"
    return box


def has_colour(image: Image.Image, hex_colour: str, tolerance: int = 12) -> bool:
    want = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    colours = image.getcolors(maxcolors=image.width * image.height) or []
    return any(all(abs(a - b) <= tolerance for a, b in zip(rgb, want, strict=True))
               for _, rgb in colours)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: `apt-get install -y chromium`")
@pytest.mark.parametrize("kind", ["plan", "run"])
def test_chart_renders_the_same_as_a_file_and_as_an_image_artifact(kind: str,
                                                                   tmp_path: Path) -> None:
    east = series_at([300, 280, 120, 100, 260, 300] * 2, step_min=60)
    london = series_at([200, 90, 80, 210, 220, 230] * 2, step_min=60, zone="GB")
    if kind == "plan":
        svg = plan_chart_svg({"aws:us-east-1": east, "aws:eu-west-2": london}, None,
                             width=WIDTH, height=HEIGHT)
        colours = COLOURS[:2]
    else:
        svg = run_chart_svg(east, london, T0 + H, T0 + 4 * H, [Mark(T0 + 2.5 * H, "re-plan")],
                            width=WIDTH, height=HEIGHT)
        colours = (COLOURS[1], COLOURS[2])
    (tmp_path / "chart.svg").write_text(svg, encoding="utf-8")
    page = tmp_path / "artifact.html"
    page.write_text('<html><body style="margin:0;background:#fff">'
                    f'<img src="{svg_data_url(svg)}"></body></html>', encoding="utf-8")
    # No page margin: the <img> sits at the window's origin, where Chromium draws a bare SVG.
    as_file = screenshot((tmp_path / "chart.svg").as_uri(), tmp_path / "file.png",
                         tmp_path / "profile-file")
    as_image = screenshot(page.as_uri(), tmp_path / "img.png", tmp_path / "profile-img")

    left, top, right, bottom = drawn_box(as_file)
    # The chart's white background is not "drawn"; its axes, labels and legend span most of it.
    assert right <= WIDTH and bottom <= HEIGHT, (left, top, right, bottom)
    assert right - left > 0.8 * WIDTH and bottom - top > 0.8 * HEIGHT, (left, top, right, bottom)
    for colour in colours:
        assert has_colour(as_file, colour), f"no {colour} line drawn"
    diff = ImageChops.difference(as_file, as_image).getbbox()
    assert diff is None, f"the file and the <img> differ in {diff}"
