"""Text to Motion: search a motion library with words and put the motion on your rig.

A Blender extension (id `text_to_motion`). It talks to a t2m server over ZeroMQ (the
bridge package, vendored into the extension at build time) and never imports torch.
The submodules that touch the UI are imported in register(), so that headless jobs
(batch, demo) can import blender_addon.retarget alone.

Which module owns what: docs/ARCHITECTURE.md (the add-on's modules import each other
without cycles; tests/test_addon_ops.py checks it).
"""


def register():
    from . import ops, panel, preferences, props

    preferences.register()
    props.register()
    ops.register()
    panel.register()


def unregister():
    from . import ops, panel, preferences, props

    panel.unregister()
    ops.unregister()
    props.unregister()
    preferences.unregister()
