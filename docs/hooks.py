"""MkDocs hooks (mkdocs.yml: ``hooks:``), so that the docs can point at files that live
outside ``docs/`` and still build with ``--strict``.

* ``BENCHMARKS.md`` (written by ``python -m bench``), its plots (``bench/plots/*.png``) and
  ``examples/*.py`` are served from the repository under the same paths, so the generated
  file is never copied by hand.
* A link from a page in ``docs/`` to one of those files, written relative to the page in
  the repository (``../BENCHMARKS.md``, ``../../examples/flask_app.py``) so that it works on
  any code host, is pointed at the served copy on the site.
* Snippets (the README's quick start on docs/quickstart.md) are read from the repository's root.
* Sphinx roles in docstrings (``:class:`Name```, rendered as ``:class:<code>Name</code>``)
  lose the role, and ``~``/``.`` prefixes, in the API reference.
"""
from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any, List

from mkdocs.structure.files import File, Files

#: Repository files served on the site under the same path (globs, relative to the repository).
MIRRORED = ("BENCHMARKS.md", "bench/plots/*.png", "examples/*.py")

_LINK = re.compile(r"\]\((?P<target>\.\./[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")
_ROLE = re.compile(r":(?:py:)?(?:class|mod|func|meth|attr|data|exc|obj):<code>[~.]?")


def _repository(config: Any) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def _mirrored(config: Any) -> List[str]:
    root = _repository(config)
    return sorted(str(path.relative_to(root).as_posix())
                  for pattern in MIRRORED for path in root.glob(pattern))


def on_config(config: Any) -> Any:
    """Snippets (``--8<-- "README.md:quickstart"``) are read from the repository's root, wherever
    mkdocs is run from."""
    snippets = config["mdx_configs"].get("pymdownx.snippets")
    if snippets is not None:
        snippets["base_path"] = [str(_repository(config))]
    return config


def on_files(files: Files, config: Any) -> Files:
    """Add the mirrored repository files to the site."""
    root = _repository(config)
    for src_uri in _mirrored(config):
        if files.get_file_from_path(src_uri) is None:
            files.append(File.generated(config, src_uri, abs_src_path=str(root / src_uri)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Point repository-relative links to mirrored files at their copies on the site."""
    docs = posixpath.relpath(Path(config["docs_dir"]).resolve().as_posix(),
                             _repository(config).as_posix())
    mirrored = set(_mirrored(config))
    page_dir = posixpath.dirname(page.file.src_uri)

    def rewrite(match: "re.Match[str]") -> str:
        target = posixpath.normpath(posixpath.join(docs, page_dir, match["target"]))
        if target not in mirrored:
            return match[0]  # left alone: --strict reports it if it leads nowhere
        on_site = posixpath.relpath(target, page_dir or ".")
        return f"]({on_site}{match['anchor'] or ''})"

    return _LINK.sub(rewrite, markdown)


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    """``:class:<code>~pkg.Name</code>`` from a docstring becomes ``<code>pkg.Name</code>``."""
    return _ROLE.sub("<code>", html)
