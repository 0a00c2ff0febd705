"""The static site generator: source folder -> model -> Jinja2 templates -> files.

Incremental builds: every source file's parse and Markdown rendering is cached by its
content hash (looked up by mtime and size first), and every output file is recorded in a
manifest with a key that hashes exactly what went into it (template set, site config, the
hashes of the posts it shows, the neighbours' titles ...). A rebuild renders only the outputs
whose key changed and deletes outputs that are no longer produced, so it ends in the same
tree a clean build makes. Rendered post bodies live in the cache (clubstack.blog.bodies), not
in memory, so a build of 10,000+ posts keeps only metadata resident.

Parallel: parsing/rendering of changed sources and rendering of pages run in forked worker
processes (one per core) when there is enough work to pay for them.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clubstack.blog import render as md
from clubstack.blog.content import ContentError, Entry, load_site_config, parse_entry

# Record stays importable from here: source caches written before model.py pickled it here.
from clubstack.blog.model import (
    CACHE_VERSION,
    THEME_DIR,
    Record,
    Site,
    cache_key,
)
from clubstack.blog.outputs import Output
from clubstack.blog.plan import nav_pages, plan
from clubstack.blog.write import delete_stale, write_output

PARALLEL_THRESHOLD = 150  # below this many items the pool start-up costs more than it saves

Progress = Callable[[str, int, int], None]
Scanned = list[tuple[str, str, list[tuple[str, os.stat_result]]]]  # (folder, kind, files)


@dataclass
class BuildResult:
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: int = 0
    parsed: int = 0
    errors: list[ContentError] = field(default_factory=list)
    posts: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------- load: sources


def _parse_source(
    site: Site, source: str, kind: str
) -> tuple[Record, md.RenderedBody] | ContentError:
    path = site.src / source
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return ContentError(source, 1, f"not UTF-8 text: {exc.reason}")
    try:
        entry = parse_entry(text, source, kind, site.config)
    except ContentError as exc:
        return exc
    except Exception as exc:
        return ContentError(source, 1, f"cannot read: {exc}")
    body_key = cache_key(entry.sha, md.RENDERER_VERSION, entry.raw_html)
    try:
        rendered = md.render_markdown(entry.body, raw_html=entry.raw_html, want_toc=entry.toc)
    except Exception as exc:
        return ContentError(source, entry.body_line, f"cannot render: {exc}")
    entry.body = ""
    url = entry.url(site.config)
    ident = f"{url}\x00{entry.title}\x00{entry.date.isoformat()}"
    record = Record(
        entry=entry,
        body_key=body_key,
        has_more=rendered.excerpt is not None,
        url=url,
        ident=ident,
        toc=rendered.toc,
    )
    return record, rendered


# Set in the parent just before the pool forks, so workers inherit the site and the work list
# and only (start, end) ranges and small results cross the process boundary.
_WORKER_SITE: Site | None = None
_WORKER_ITEMS: list[Any] = []


def _parse_chunk(span: tuple[int, int]) -> list[Record | ContentError]:
    """Parse and render a range of sources; their bodies go to the cache in one write."""
    site = _WORKER_SITE
    assert site is not None
    results: list[Record | ContentError] = []
    bodies: list[tuple[str, str, str | None]] = []
    for source, kind in _WORKER_ITEMS[span[0] : span[1]]:
        parsed = _parse_source(site, source, kind)
        if isinstance(parsed, ContentError):
            results.append(parsed)
            continue
        record, rendered = parsed
        bodies.append((record.body_key, rendered.html, rendered.excerpt))
        results.append(record)
    site.bodies.put_many(bodies)
    return results


def _render_chunk(span: tuple[int, int]) -> list[str]:
    assert _WORKER_SITE is not None
    return [write_output(_WORKER_SITE, output) for output in _WORKER_ITEMS[span[0] : span[1]]]


def _spans(total: int, n: int) -> list[tuple[int, int]]:
    size = max(1, min(64, total // (n * 4) or 1))
    return [(i, min(i + size, total)) for i in range(0, total, size)]


def _pool_map(
    site: Site,
    fn: Callable[[tuple[int, int]], list[Any]],
    items: list[Any],
    workers: int,
    stage: str,
    progress: Progress | None,
) -> list[Any]:
    """Run fn over ranges of items, in forked processes when it pays off; keeps order."""
    global _WORKER_SITE, _WORKER_ITEMS
    _WORKER_SITE, _WORKER_ITEMS = site, items
    results: list[Any] = []
    total = len(items)
    try:
        if workers <= 1 or total < PARALLEL_THRESHOLD:
            for span in _spans(total, 1):
                results.extend(fn(span))
                if progress:
                    progress(stage, len(results), total)
            return results
        site.bodies.hand_over()  # each worker opens its own connection
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for part in pool.map(fn, _spans(total, workers)):
                results.extend(part)
                if progress:
                    progress(stage, len(results), total)
        return results
    finally:
        _WORKER_SITE, _WORKER_ITEMS = None, []


def _scan(src: Path, folder: str) -> list[tuple[str, os.stat_result]]:
    found: list[tuple[str, os.stat_result]] = []
    stack = [folder]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(src, rel)))
        except FileNotFoundError:
            continue
        for item in entries:
            name = item.name
            if name.startswith("."):
                continue
            if item.is_dir():
                stack.append(f"{rel}/{name}")
            elif name.endswith((".md", ".markdown")):
                found.append((f"{rel}/{name}", item.stat()))
    found.sort()
    return found


def _static_stats(src: Path) -> list[tuple[str, int, int]]:
    found = []
    for base in (THEME_DIR / "static", src / "static"):
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                st = os.stat(os.path.join(dirpath, name))
                found.append((os.path.join(dirpath, name), st.st_mtime_ns, st.st_size))
    return sorted(found)


def _read_pickle(path: Path, default: Any) -> Any:
    try:
        return pickle.loads(path.read_bytes())  # noqa: S301 (our own cache folder)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        return default


def _write_pickle(path: Path, data: Any) -> None:
    """Atomically: a killed build leaves the old, still consistent, cache."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(path)


# ---------------------------------------------------------------- the build


def build(
    src: Path,
    out: Path,
    *,
    drafts: bool = False,
    now: datetime | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Build the site in src into out. Broken files are reported in the result, not raised
    (except a broken site.toml, which stops the build)."""
    src, out = Path(src).resolve(), Path(out).resolve()
    now = now or datetime.now(UTC)
    workers = workers or len(os.sched_getaffinity(0))
    config = load_site_config(src)
    cache = (cache_dir or src / ".cache" / "blog").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    site = Site(src, out, cache, config)
    result = BuildResult()

    scanned: Scanned = [
        (folder, kind, _scan(src, folder))
        for folder, kind in (("posts", "post"), ("pages", "page"))
    ]
    signature = cache_key(
        site.global_key,
        drafts,
        str(out),
        [(s, st.st_mtime_ns, st.st_size) for _f, _k, found in scanned for s, st in found],
        _static_stats(src),
    )
    state_path = cache / f"state-{cache_key(str(out))}.pickle"
    if _unchanged(state_path, signature, now, out, result):
        return result
    state_path.unlink(missing_ok=True)

    sources = _load(site, scanned, workers, progress, result)
    _model(site, sources.records, drafts, now, result)
    manifest_path = cache / f"manifest-{cache_key(str(out))}.pickle"
    manifest: dict[str, str] = _read_pickle(manifest_path, {})
    new_manifest = _write(site, _wanted(plan(site), result), manifest, workers, progress, result)
    _save(site, sources, manifest_path, manifest, new_manifest, result)
    if not result.errors:
        hidden = [
            r.entry.date
            for r in sources.records
            if not drafts and not r.entry.draft and r.entry.date > now
        ]
        state = {
            "signature": signature,
            "due": min(hidden, default=None),
            "outputs": list(new_manifest),
            "posts": result.posts,
        }
        state_path.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    return result


def _unchanged(
    state_path: Path, signature: str, now: datetime, out: Path, result: BuildResult
) -> bool:
    """The fast path: same sources (by stat), templates, config and visibility as the last
    successful build, no hidden post come due, and every output still there."""
    state = _read_pickle(state_path, {})
    if (
        state.get("signature") == signature
        and (state["due"] is None or now < state["due"])
        and all(os.path.exists(os.path.join(out, p)) for p in state["outputs"])
    ):
        result.skipped, result.posts = len(state["outputs"]), state["posts"]
        return True
    return False


@dataclass
class Sources:
    """The source cache as loaded, as it will be saved, and what this build parsed."""

    path: Path
    old: dict[str, Any]  # source -> (mtime_ns, size, Record), and "__key__"
    new: dict[str, Any]
    records: list[Record]
    todo: list[tuple[str, str]]  # (source, kind) parsed in this build


def _load(
    site: Site, scanned: Scanned, workers: int, progress: Progress | None, result: BuildResult
) -> Sources:
    """Every source's record: cached ones when mtime+size match and the body is still on
    disk, the others parsed and rendered (in workers when there are many)."""
    cache_id = (CACHE_VERSION, md.RENDERER_VERSION, site.config.fingerprint())
    path = site.cache / "sources.pickle"
    old: dict[str, Any] = _read_pickle(path, {})
    if old.get("__key__") != cache_id:
        old = {}
    new: dict[str, Any] = {"__key__": cache_id}
    records: list[Record] = []
    todo: list[tuple[str, str]] = []
    stats: dict[str, tuple[int, int]] = {}
    cached_bodies = site.bodies.keys() if old else set()
    for _folder, kind, found in scanned:
        for source, st in found:
            stats[source] = (st.st_mtime_ns, st.st_size)
            hit = old.get(source)
            if (
                hit
                and hit[0] == st.st_mtime_ns
                and hit[1] == st.st_size
                and hit[2].body_key in cached_bodies
            ):
                records.append(hit[2])
                new[source] = hit
            else:
                todo.append((source, kind))
    for item in _pool_map(site, _parse_chunk, todo, workers, "parse", progress):
        if isinstance(item, ContentError):
            result.errors.append(item)
            continue
        records.append(item)
        mtime, size = stats[item.entry.source]
        new[item.entry.source] = (mtime, size, item)
    result.parsed = len(todo)
    return Sources(path, old, new, records, todo)


def _model(
    site: Site, records: list[Record], drafts: bool, now: datetime, result: BuildResult
) -> None:
    """The site's published posts newest first, its pages, their URLs (a URL used twice is
    an error) and the nav bar."""

    def visible(e: Entry) -> bool:
        return drafts or (not e.draft and e.date <= now)

    posts = sorted(
        (r for r in records if r.entry.kind == "post" and visible(r.entry)),
        key=lambda r: (r.entry.date, r.entry.source),
        reverse=True,
    )
    pages = sorted(
        (r for r in records if r.entry.kind == "page" and visible(r.entry)),
        key=lambda r: r.entry.source,
    )
    taken: dict[str, str] = {}
    for rec in sorted(posts + pages, key=lambda r: r.entry.source):
        url = rec.url
        if url in taken:
            result.errors.append(
                ContentError(rec.entry.source, 1, f"URL {url} is already used by {taken[url]}")
            )
            continue
        taken[url] = rec.entry.source
        site.urls[rec.entry.source] = url
    site.posts = [r for r in posts if r.entry.source in site.urls]
    site.pages = [r for r in pages if r.entry.source in site.urls]
    site.nav_pages = nav_pages(site)
    result.posts = len(site.posts)


def _wanted(outputs: list[Output], result: BuildResult) -> dict[str, Output]:
    """The outputs by path; a second output for the same file is an error."""
    wanted: dict[str, Output] = {}
    for output in outputs:
        if output.path in wanted:
            result.errors.append(ContentError(output.path, 1, "two outputs want this file"))
            continue
        wanted[output.path] = output
    return wanted


def _write(
    site: Site,
    wanted: dict[str, Output],
    manifest: dict[str, str],
    workers: int,
    progress: Progress | None,
    result: BuildResult,
) -> dict[str, str]:
    """Write the outputs whose key changed (or whose file is gone), delete the files the
    last build made and this one does not; returns the new manifest."""
    out = site.out
    out.mkdir(parents=True, exist_ok=True)
    existing = set(manifest) if manifest else set()
    out_prefix = str(out) + os.sep
    to_run = [
        output
        for path, output in wanted.items()
        if manifest.get(path) != output.key or not os.path.exists(out_prefix + path)
    ]
    result.skipped = len(wanted) - len(to_run)
    result.written = _pool_map(site, _render_chunk, to_run, workers, "render", progress)
    result.deleted = delete_stale(out, sorted(existing - set(wanted)))
    return {path: output.key for path, output in wanted.items()}


def _save(
    site: Site,
    sources: Sources,
    manifest_path: Path,
    manifest: dict[str, str],
    new_manifest: dict[str, str],
    result: BuildResult,
) -> None:
    """Save what changed of the source cache and the manifest; drop bodies no source has."""
    if sources.todo or len(sources.new) != len(sources.old):
        _write_pickle(sources.path, sources.new)
    if result.written or result.deleted or new_manifest != manifest:
        _write_pickle(manifest_path, new_manifest)
    if sources.todo:
        site.bodies.keep_only({v[2].body_key for k, v in sources.new.items() if k != "__key__"})
    site.bodies.close()
