"""Errors the add-on reports to the user (one line, no traceback)."""


class AddonError(Exception):
    """Base of every error a user of the add-on can act on."""


class BoneMapError(AddonError):
    """No usable mapping between the rig's bones and the SMPL-22 joints."""


class RetargetError(AddonError):
    """A motion that cannot be put onto the chosen armature."""
