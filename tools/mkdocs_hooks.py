"""mkdocs hooks: late scheme pages join the nav; Sphinx roles render as code.

``docs/schemes/*.md`` pages not listed in ``mkdocs.yml``'s nav (e.g. the
GradEP page, when it arrives) are appended to the "Schemes" section, titled
by their first heading, so ``mkdocs build --strict`` neither warns about an
omitted page nor needs an edit of ``mkdocs.yml``. Docstrings cross-reference
with Sphinx roles (``:func:`asyncnet.run```), which mkdocstrings shows
verbatim; ``on_page_content`` renders them as plain code.
"""

from __future__ import annotations

import glob
import os
import re


def _listed(nav) -> set[str]:
    out: set[str] = set()
    for item in nav or []:
        if isinstance(item, dict):
            for v in item.values():
                out |= _listed(v) if isinstance(v, list) else {v}
        elif isinstance(item, str):
            out.add(item)
    return out


def on_config(config, **kwargs):
    """Append unlisted scheme pages to the Schemes section of the nav."""
    nav = config.get("nav")
    schemes = next((item["Schemes"] for item in nav or []
                    if isinstance(item, dict) and "Schemes" in item), None)
    if schemes is None:
        return config
    listed = _listed(nav)
    for path in sorted(glob.glob(os.path.join(config["docs_dir"], "schemes", "*.md"))):
        rel = "schemes/" + os.path.basename(path)
        if rel in listed:
            continue
        with open(path, encoding="utf-8") as f:
            title = next((ln.lstrip("# ").strip() for ln in f if ln.startswith("# ")),
                         os.path.basename(path)[:-3])
        schemes.append({title: rel})
    return config


_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):(<code>)~?([\w.]+)(</code>)")
_ROLE_RAW = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`~?([\w.]+)`")


def on_page_content(html, **kwargs):
    """Docstrings use Sphinx roles (``:func:`x```); show them as plain code."""
    html = _ROLE.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}", html)
    return _ROLE_RAW.sub(lambda m: m.group(1), html)
