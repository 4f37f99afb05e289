"""Small synthetic scenes in each dataset's real on-disk layout (numpy ray-caster of spheres and boxes).

One module per layout (:mod:`.dnerf`, :mod:`.llff`, :mod:`.d2rf`, :mod:`.eyeful`), each with a ``make_*_scene``
function and a ``main(argv)``; ``dynsplat-make-scene LAYOUT OUT_DIR ...`` (:mod:`.cli`) runs them. Importing this
package imports nothing heavy.
"""
