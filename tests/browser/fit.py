"""At a phone's width (issue 30): the page does not scroll sideways and every element
of an action (its buttons, fields, links) lies inside the viewport."""

from __future__ import annotations

from typing import Any

_OUTSIDE = """
var width = window.innerWidth, out = [];
document.querySelectorAll(arguments[0]).forEach(function (e) {
  var box = e.getBoundingClientRect();
  if (box.width === 0 && box.height === 0) { return; }  // not rendered (hidden input)
  if (box.left < 0 || box.right > width + 0.5) {
    out.push((e.id || e.name || e.tagName) + " [" + Math.round(box.left) + ", "
             + Math.round(box.right) + "]");
  }
});
return out;
"""


def assert_fits(driver: Any, actions: str) -> None:
    """No horizontal scrolling of the page, and each element ``actions`` selects (a CSS
    selector) inside the window's width."""
    scroll, inner = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert scroll <= inner, f"the page scrolls sideways: {scroll} px in {inner} px"
    found = driver.find_elements("css selector", actions)
    assert found, f"no action ({actions}) on the page"
    outside = driver.execute_script(_OUTSIDE, actions)
    assert not outside, f"actions beyond the {inner} px window: {outside}"
