"""The add-on preferences (Edit > Preferences > Add-ons > Text to Motion): the default server,
timeouts, the local server command and the optional CurveZMQ key files."""
from __future__ import annotations

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from .wire import DEFAULT_ADDRESS

# The embedded default model was trained on Bandai-Namco mocap (CC BY-NC 4.0).
DEFAULT_MODEL_LICENCE = ("The default model is for non-commercial use only (CC BY-NC 4.0 data); "
                         "for commercial work run 't2m serve --model permissive'")


def addon_preferences(context=None):
    """This add-on's preferences, or None when it is not registered as an add-on."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


class T2MPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    default_server: StringProperty(name="Default server", default=DEFAULT_ADDRESS,
                                   description="ZeroMQ address new scenes connect to")
    timeout: FloatProperty(name="Timeout", default=5.0, min=0.5, max=600.0, unit="TIME_ABSOLUTE",
                           description="Seconds to wait for each reply before retrying")
    retries: IntProperty(name="Retries", default=1, min=0, max=10,
                         description="How many times a request is resent before giving up")
    server_command: StringProperty(
        name="Server command", default="",
        description="A command that starts a local server, e.g. 't2m serve --bind tcp://127.0.0.1:5557'")
    # Optional CurveZMQ keys for a server started with --curve-secret (and --allowed-clients).
    # Both empty (the default): no encryption, as a local server needs none.
    client_secret_key: StringProperty(
        name="Client secret key", default="", subtype="FILE_PATH",
        description="This client's key pair: the NAME.key_secret file of 't2m keys generate --name NAME' "
                    "(the server admits it with 't2m keys allow NAME.key'). Empty: no client key")
    server_public_key: StringProperty(
        name="Server public key", default="", subtype="FILE_PATH",
        description="The server's public key file (server.key of 't2m keys generate'), to encrypt with "
                    "CurveZMQ. Empty: no encryption (a local server)")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "default_server")
        row = layout.row()
        row.prop(self, "timeout")
        row.prop(self, "retries")
        layout.prop(self, "server_command")
        keys = layout.box()
        keys.label(text="Client keys (CurveZMQ, for a remote server; leave empty for a local one)", icon="LOCKED")
        keys.prop(self, "server_public_key")
        keys.prop(self, "client_secret_key")
        layout.label(text=DEFAULT_MODEL_LICENCE, icon="INFO")


def register():
    bpy.utils.register_class(T2MPreferences)


def unregister():
    bpy.utils.unregister_class(T2MPreferences)
