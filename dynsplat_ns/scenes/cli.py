"""``dynsplat-make-scene LAYOUT OUT_DIR [options]``: write a small test scene in a real layout (see LAYOUTS)."""

from __future__ import annotations

import importlib
import sys

#: Layout name → module (under ``dynsplat_ns.scenes``) whose ``main(argv)`` writes it.
LAYOUTS = {
    "dnerf": "D-NeRF (transforms_{train,val,test}.json, RGBA frames, times)",
    "llff": "LLFF (poses_bounds.npy, images/, images_k/, sparse/0)",
    "d2rf": "D2RF (left bokeh/sharp views, right sharp views, masks, disparity, COLMAP; --blur KINDS)",
    "eyeful": "EyefulTower (cameras.json, splits.json, images-jpeg-*/)",
    "dycheck": "DyCheck iPhone (moving phone train, 2 static val cameras, depth, covisible masks, distortion)",
    "ring360": "static 360° ring around objects on a checker floor (EyefulTower; --forward-facing: LLFF)",
}


def main(argv: list[str] | None = None) -> int:
    """Dispatches to the layout's generator; ``--help`` after the layout lists its options."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in LAYOUTS:
        lines = [f"  {name:<7} {what}" for name, what in LAYOUTS.items()]
        print("usage: dynsplat-make-scene LAYOUT OUT_DIR [options]  (LAYOUT --help for its options)\n\nlayouts:")
        print("\n".join(lines))
        if args and args[0] not in ("-h", "--help"):
            print(f"\nerror: unknown layout {args[0]!r}", file=sys.stderr)
            return 2
        return 0 if args else 2
    module = importlib.import_module(f"dynsplat_ns.scenes.{args[0]}")
    return int(module.main(args[1:]))


def entrypoint() -> None:
    """Console-script entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    entrypoint()
