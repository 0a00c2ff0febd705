"""Outputs to files: write one planned output, delete the ones a build no longer makes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from clubstack.blog.model import Site
from clubstack.blog.outputs import Output, StaticCopy


def write_output(site: Site, output: Output) -> str:
    """Render the output and write its file; returns its path relative to the site's out."""
    if isinstance(output, StaticCopy):
        shutil.copyfile(output.source, _prepare(site, output.path))
        return output.path
    data = output.render(site)
    target = _prepare(site, output.path)
    if isinstance(data, str):
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(data)
    else:
        with open(target, "wb") as fh:
            fh.write(data)
    return output.path


def _prepare(site: Site, rel: str) -> str:
    """The output file's path, its folder created (once per build and process)."""
    target = os.path.join(site.out, rel)
    folder = os.path.dirname(target)
    if folder not in site.made_dirs:
        try:  # most folders are one post's, in a month folder made before: one mkdir
            os.mkdir(folder)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
        site.made_dirs.add(folder)
    return target


def delete_stale(out: Path, paths: list[str]) -> list[str]:
    """Delete these earlier outputs (and folders left empty); returns those that existed."""
    deleted = []
    for path in paths:
        target = out / path
        if target.exists():
            target.unlink()
            deleted.append(path)
            _prune_dirs(target.parent, out)
    return deleted


def _prune_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
