"""Image helpers for dataparsers: sizes read from file headers only (nothing is decoded), and cached downscaling.

The data folder is only ever read. Downscaled copies are cached under ``$XDG_CACHE_HOME/dynsplat_ns/<hash>/`` (see
:func:`downscale_cache_dir`) and reused while they are newer than their source.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import DataParserError


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image, reading only its header.

    Raises:
        DataParserError: The file is missing or is not an image Pillow can open.
    """
    path = Path(path)
    if not path.is_file():
        raise DataParserError(path, "image file not found")
    try:
        with Image.open(path) as image:
            return tuple(image.size)  # type: ignore[return-value]
    except (OSError, UnidentifiedImageError) as err:
        raise DataParserError(path, f"cannot read image: {err}") from None


def check_image_sizes(filenames: Sequence[Path]) -> tuple[int, int]:
    """Check that all images exist and share one size, reading only the file headers.

    Args:
        filenames: Image files.

    Returns:
        The common ``(width, height)``.

    Raises:
        DataParserError: An image is missing or unreadable, or its size differs from the others' (the odd file
            is named: the size most files share is taken as the right one).
    """
    if not filenames:
        raise ValueError("check_image_sizes needs at least one file")
    sizes = [image_size(path) for path in filenames]
    reference = Counter(sizes).most_common(1)[0][0]
    example = Path(filenames[sizes.index(reference)])
    for path, size in zip(filenames, sizes, strict=True):
        if size != reference:
            raise DataParserError(
                path,
                f"image size {size[0]}x{size[1]} differs from the other images' {reference[0]}x{reference[1]} "
                f"(e.g. {example.name}); all images of a split must have the same size",
            )
    return reference


def _shrinks_to(big: tuple[int, int], small: tuple[int, int]) -> bool:
    """Whether ``small`` is ``big`` divided by one whole number ``f`` (both axes), each side within 1 px of it."""
    (bw, bh), (sw, sh) = big, small
    if sw < 1 or sh < 1:
        return False
    return any(abs(sw - bw / f) <= 1 and abs(sh - bh / f) <= 1 for f in {max(1, bw // sw), max(1, -(-bw // sw))})


def mask_size_problem(mask_size: tuple[int, int], image_size: tuple[int, int]) -> str | None:
    """None when a mask of ``mask_size`` fits images of ``image_size``, else what is wrong (one sentence).

    A mask fits when its size is the image size divided by a whole number ``f`` (the same for both axes; 1 = the same
    size, 2 = half, as D2RF's motion masks), or multiplied by one (full-resolution masks of half-resolution images,
    e.g. D2RF's background masks with ``images_2/``); each side within 1 px of the exact value (rounding either way).
    """
    mask_size, image_size = tuple(mask_size), tuple(image_size)
    if _shrinks_to(image_size, mask_size) or _shrinks_to(mask_size, image_size):
        return None
    (mw, mh), (w, h) = mask_size, image_size
    expected = ", ".join([f"{2 * w}x{2 * h}"] + [f"{round(w / f)}x{round(h / f)}" for f in (1, 2, 3, 4)])
    return (
        f"size {mw}x{mh} does not fit the {w}x{h} images: a mask must be the image size divided (or multiplied) by a "
        f"whole number, ±1 px (expected e.g. {expected})"
    )


def check_mask_sizes(filenames: Sequence[Path], image_size_wh: tuple[int, int], what: str = "mask") -> None:
    """Check that every mask's size is the images' size divided by a whole number (headers only; see
    :func:`mask_size_problem`).

    Raises:
        DataParserError: A mask is missing, unreadable, or of another size (names the mask, its size and the sizes
            that would fit).
    """
    for path in filenames:
        problem = mask_size_problem(image_size(path), image_size_wh)
        if problem is not None:
            raise DataParserError(path, f"{what} {problem}")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dynsplat_ns``, or ``~/.cache/dynsplat_ns`` when XDG_CACHE_HOME is unset."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dynsplat_ns"


def downscale_cache_dir(data: Path, factor: int, cache_root: Path | None = None) -> Path:
    """The cache folder for ``data`` at ``factor``: ``<cache_root>/<sha1(abs data path, factor)[:16]>``."""
    key = hashlib.sha1(f"{Path(data).resolve()}\n{int(factor)}".encode()).hexdigest()[:16]
    return Path(cache_root if cache_root is not None else default_cache_dir()).expanduser() / key


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _cache_name(src: Path, data: Path) -> Path:
    """Path of ``src``'s copy relative to the cache folder: mirror the layout under ``data`` when possible."""
    try:
        return src.resolve().relative_to(data.resolve())
    except ValueError:
        digest = hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:16]
        return Path("_external") / f"{src.stem}-{digest}{src.suffix}"


def _write_downscaled(src: Path, dst: Path, factor: int) -> None:
    """Write ``src`` shrunk by ``factor`` (area filter; Pillow premultiplies alpha) to ``dst`` atomically."""
    try:
        with Image.open(src) as image:
            fmt = image.format or "PNG"
            image.load()
            if image.mode == "P":
                image = image.convert("RGBA")
            size = (max(1, image.width // factor), max(1, image.height // factor))
            small = image.resize(size, resample=Image.Resampling.BOX)
    except (OSError, UnidentifiedImageError) as err:
        raise DataParserError(src, f"cannot read image: {err}") from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-", suffix=dst.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            if fmt == "JPEG":
                small.convert("RGB").save(handle, format=fmt, quality=95)
            else:
                small.save(handle, format=fmt)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def downscale_images(filenames: Sequence[Path], factor: int, data: Path, cache_root: Path | None = None) -> list[Path]:
    """Shrunk copies of ``filenames``, cached outside the data folder and reused while newer than the source.

    Args:
        filenames: Source images (normally inside ``data``).
        factor: Integer downscale factor; 1 returns ``filenames`` unchanged and writes nothing.
        data: The dataset folder (keys the cache; never written to).
        cache_root: Cache root (default :func:`default_cache_dir`).

    Returns:
        Paths of the downscaled images, in the same order.

    Raises:
        DataParserError: The cache folder would be inside the data folder, or a source image is unreadable.
    """
    factor = int(factor)
    if factor == 1:
        return [Path(f) for f in filenames]
    cache = downscale_cache_dir(data, factor, cache_root)
    if _is_within(cache, Path(data)):
        problem = f"cache folder is inside the data folder {data}; refusing to write there (set cache_dir elsewhere)"
        raise DataParserError(cache, problem)
    out = []
    for src in map(Path, filenames):
        dst = cache / _cache_name(src, Path(data))
        if not (dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime):
            _write_downscaled(src, dst, factor)
        out.append(dst)
    return out
