"""mkdocs hooks: scheme pages that land later join the navigation by themselves.

``docs/schemes/*.md`` pages not listed in ``mkdocs.yml``'s nav (e.g. the
GradEP page, when it arrives) are appended to the "Schemes" section, titled
by their first heading, so ``mkdocs build --strict`` neither warns about an
omitted page nor needs an edit of ``mkdocs.yml``.
"""

from __future__ import annotations

import glob
import os


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
