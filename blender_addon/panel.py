"""The T2M tab in the 3D view's sidebar: server, search, results (with previews), a query's
steps as a sequence, apply, word colours."""
from __future__ import annotations

import bpy

from . import bonemap, previews, retarget
from .errors import AddonError
from .props import bone_map_choice

DETAIL_PREVIEW_SCALE = 6.0


class T2M_UL_results(bpy.types.UIList):
    """One row per search result: its preview (when the server draws them), name, score, duration."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        row = layout.row(align=True)
        preview = previews.icon(item.motion_id)
        if preview:
            row.label(text="", icon_value=preview)
        else:
            row.label(text="", icon="ARMATURE_DATA")
        row.label(text=item.name)
        row.label(text=f"{item.score:.3f}")
        row.label(text=f"{item.duration:.1f} s")


def draw_result_details(layout, results, index: int) -> None:
    """Under a result list: the selected result's preview, larger, its captions, and where
    each step of the query happens in it."""
    if not 0 <= index < len(results):
        return
    item = results[index]
    preview = previews.icon(item.motion_id)
    if preview:
        layout.template_icon(icon_value=preview, scale=DETAIL_PREVIEW_SCALE)
    if item.captions:
        layout.label(text=item.captions[:120])
    if item.spans:
        spans = "  ".join(f"{n}: {span.start:.1f}-{span.end:.1f} s" for n, span in enumerate(item.spans, start=1))
        layout.label(text=f"Steps at {spans}", icon="TIME")


class _T2MPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "T2M"


class T2M_PT_main(_T2MPanel, bpy.types.Panel):
    bl_label = "Text to Motion"

    def draw(self, context):
        settings = context.scene.t2m
        layout = self.layout
        row = layout.row(align=True)
        row.prop(settings, "server", text="")
        row.operator("t2m.check_server", text="", icon="FILE_REFRESH")
        row.operator("t2m.start_server", text="", icon="PLAY")
        if settings.server_info:
            layout.label(text=settings.server_info, icon="LINKED")
        if settings.error:
            layout.label(text=settings.error, icon="ERROR")
        elif settings.status:
            layout.label(text=settings.status, icon="SORTTIME" if settings.busy else "INFO")
        row = layout.row(align=True)
        row.prop(settings, "query", text="", icon="VIEWZOOM")
        search = row.operator("t2m.search", text="Search")
        search.k = settings.k
        layout.prop(settings, "k")
        if settings.segments:
            layout.label(text="Whole query: clips that do every step, in order")
        layout.template_list("T2M_UL_results", "", settings, "results", settings, "result_index", rows=5)
        draw_result_details(layout, settings.results, settings.result_index)


class T2M_PT_sequence(_T2MPanel, bpy.types.Panel):
    """A query of several steps: each step with its own results; the picked clips joined into one action."""
    bl_label = "Sequence"
    bl_parent_id = "T2M_PT_main"

    @classmethod
    def poll(cls, context):
        return len(context.scene.t2m.segments) > 0

    def draw(self, context):
        settings = context.scene.t2m
        layout = self.layout
        for number, segment in enumerate(settings.segments, start=1):
            box = layout.box()
            box.label(text=f"{number}. {segment.text}", icon="SEQUENCE")
            box.template_list("T2M_UL_results", f"segment_{number}", segment, "results", segment, "result_index",
                              rows=3)
            draw_result_details(box, segment.results, segment.result_index)
        layout.prop(settings, "blend_frames")
        layout.prop(settings, "root_motion", expand=True)
        layout.operator("t2m.apply_sequence", icon="NLA")


class T2M_PT_apply(_T2MPanel, bpy.types.Panel):
    bl_label = "Apply"
    bl_parent_id = "T2M_PT_main"

    def draw(self, context):
        scene = context.scene
        settings = scene.t2m
        layout = self.layout
        row = layout.row(align=True)
        row.prop(settings, "bone_map")
        row.operator("t2m.edit_bone_map", text="", icon="TEXT")
        if settings.bone_map == "CUSTOM":
            layout.prop(settings, "bone_map_text", text="Table")
        layout.prop(settings, "root_motion", expand=True)
        row = layout.row(align=True)
        row.prop(settings, "auto_scale")
        sub = row.row(align=True)
        sub.enabled = not settings.auto_scale
        sub.prop(settings, "scale")
        row = layout.row(align=True)
        row.prop(settings, "use_current_frame")
        sub = row.row(align=True)
        sub.enabled = not settings.use_current_frame
        sub.prop(settings, "start_frame")
        layout.label(text=f"Target: {retarget.scene_fps(scene):g} fps (the scene's)")
        apply = layout.operator("t2m.apply", icon="ARMATURE_DATA")
        apply.index = settings.result_index


_SUMMARY_CACHE: dict = {}


def bone_map_summary(obj, settings) -> dict:
    """Which bone plays which SMPL-22 joint for `obj` with the panel's bone-map option:
    {"header": str, "rows": [(joint, bone or "")], "error": str}. Cached per rig and
    option (draw() runs on every redraw)."""
    text = settings.bone_map_text
    key = (obj.name, settings.bone_map, text.name if text else "", text.as_string() if text else "",
           tuple(bone.name for bone in obj.data.bones))
    if key in _SUMMARY_CACHE:
        return _SUMMARY_CACHE[key]
    try:
        if settings.bone_map == "AUTO":
            report = bonemap.auto_report(obj.data)
            table = report["table"]
            bonemap.require_core(obj.data, table)
            header = (f"{report['source']}: {report['convention']} names, found by {report['how']}, "
                      f"confidence {report['confidence']:.2f}")
        else:
            table = retarget.resolve_bone_map(obj, bone_map_choice(settings))
            header = f"{settings.bone_map.lower()} map"
        summary = {"header": header, "rows": [(joint, table.get(joint, "")) for joint in bonemap.SMPL22_JOINTS],
                   "error": ""}
    except AddonError as error:
        summary = {"header": "", "rows": [], "error": str(error)}
    if len(_SUMMARY_CACHE) > 32:
        _SUMMARY_CACHE.clear()
    _SUMMARY_CACHE[key] = summary
    return summary


class T2M_PT_bone_map(_T2MPanel, bpy.types.Panel):
    """The bone map of the active armature: which bone gets which SMPL-22 joint."""
    bl_label = "Bone map"
    bl_parent_id = "T2M_PT_apply"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            layout.label(text="Select an armature to see its bone map")
            return
        summary = bone_map_summary(obj, context.scene.t2m)
        if summary["error"]:
            for line in _wrap(summary["error"], 60):
                layout.label(text=line, icon="ERROR")
            return
        layout.label(text=summary["header"], icon="BONE_DATA")
        column = layout.column(align=True)
        for joint, bone in summary["rows"]:
            row = column.row(align=True)
            row.label(text=joint)
            row.alert = not bone
            row.label(text=bone or "(none)")


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


class T2M_PT_words(_T2MPanel, bpy.types.Panel):
    bl_label = "Which words matched"
    bl_parent_id = "T2M_PT_main"

    def draw(self, context):
        settings = context.scene.t2m
        layout = self.layout
        if not settings.tokens:
            layout.label(text="Search, then apply a result")
            return
        layout.prop(settings, "relevance_animated")
        flow = layout.grid_flow(row_major=True, columns=4, even_columns=False, align=True)
        for index, token in enumerate(settings.tokens):
            button = flow.operator("t2m.show_relevance", text=token.text, depress=index == settings.active_token)
            button.token = index
            button.animated = settings.relevance_animated
        layout.operator("t2m.clear_relevance", icon="LOOP_BACK")


class T2M_PT_describe(_T2MPanel, bpy.types.Panel):
    bl_label = "Describe"
    bl_parent_id = "T2M_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        settings = context.scene.t2m
        layout = self.layout
        layout.operator("t2m.describe", icon="TEXT")
        for caption in settings.descriptions:
            layout.label(text=f"{caption.score:.3f}  {caption.text}")


CLASSES = (T2M_UL_results, T2M_PT_main, T2M_PT_sequence, T2M_PT_apply, T2M_PT_bone_map, T2M_PT_words,
           T2M_PT_describe)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
