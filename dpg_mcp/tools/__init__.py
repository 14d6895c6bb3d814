"""The tool table: one declarative row per tool, and the pure visibility rule.

No MCP or transport imports under dpg_mcp/tools/: SERVER registers these specs with the MCP SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from pydantic import BaseModel

from dpg_mcp.tools import account, files, images, metadata, sets
from dpg_mcp.tools.base import TOOLSETS, ToolContext, ToolResult, ToolSpec
from dpg_mcp.tools.shapes import WriteResult

R = "api.images.read"

TOOLS: tuple[ToolSpec, ...] = (
    # ---- images
    ToolSpec(
        name="search_images",
        title="Search images",
        description="Find photos by text, keyword, rating, camera, date or map area. "
        "A set's photos: browse_sets; one in full: get_image.",
        scope=R,
        toolset="images",
        read_only=True,
        destructive=False,
        idempotent=True,
        input_model=images.SearchImagesArgs,
        output_model=images.SearchResult,
        handler=images.search_images,
    ),
    ToolSpec(
        name="get_image",
        title="Get image",
        description="One photo in full: caption, keywords, metadata, credits, crops, sets, versions, "
        "and a JPEG preview.",
        scope=R,
        toolset="images",
        read_only=True,
        destructive=False,
        idempotent=True,
        input_model=images.GetImageArgs,
        output_model=images.ImageDetail,
        handler=images.get_image,
    ),
    ToolSpec(
        name="caption_image",
        title="Caption images",
        description="Set photos' titles, captions (description), alt text, rotation or date taken: "
        "each photo its own values, many in one call.",
        scope="api.images.write",
        toolset="images",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=images.CaptionImageArgs,
        output_model=WriteResult,
        handler=images.caption_image,
    ),
    ToolSpec(
        name="delete_image",
        title="Delete images",
        description="Delete photos from the gallery for good; asks the user first. "
        "To only take photos out of a set, use remove_from_set.",
        scope="api.images.delete",
        toolset="images",
        read_only=False,
        destructive=True,
        idempotent=True,
        input_model=images.DeleteImageArgs,
        output_model=WriteResult,
        handler=images.delete_image,
    ),
    # ---- metadata
    ToolSpec(
        name="list_keywords",
        title="List keywords",
        description="List the gallery's keywords with how many photos use each, and the keyword namespaces.",
        scope=R,
        toolset="metadata",
        read_only=True,
        destructive=False,
        idempotent=True,
        input_model=metadata.ListKeywordsArgs,
        output_model=metadata.KeywordsResult,
        handler=metadata.list_keywords,
    ),
    ToolSpec(
        name="tag_images",
        title="Tag images",
        description="Add or remove keywords on photos. To rename a keyword everywhere, use rename_keyword.",
        scope="api.keywords.write",
        toolset="metadata",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=metadata.TagImagesArgs,
        output_model=WriteResult,
        handler=metadata.tag_images,
    ),
    ToolSpec(
        name="rename_keyword",
        title="Rename keyword",
        description="Rename a keyword, or merge it into another, across the gallery or on given photos.",
        scope="api.keywords.write",
        toolset="metadata",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=metadata.RenameKeywordArgs,
        output_model=WriteResult,
        handler=metadata.rename_keyword,
    ),
    ToolSpec(
        name="rate_images",
        title="Rate images",
        description="Give photos a rating.",
        scope="api.ratings.write",
        toolset="metadata",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=metadata.RateImagesArgs,
        output_model=WriteResult,
        handler=metadata.rate_images,
    ),
    ToolSpec(
        name="edit_metadata",
        title="Edit metadata",
        description="Set IPTC metadata, alt text, credits or crops on photos, or copy in their embedded "
        "caption, keywords, date.",
        scope="api.metadata.write",
        toolset="metadata",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=metadata.EditMetadataArgs,
        output_model=WriteResult,
        handler=metadata.edit_metadata,
    ),
    # ---- sets
    ToolSpec(
        name="browse_sets",
        title="Browse sets",
        description="The tree of sets, or one set opened: details, photos in gallery order with visibility, "
        "child sets, snapshots.",
        scope=R,
        toolset="sets",
        read_only=True,
        destructive=False,
        idempotent=True,
        input_model=sets.BrowseSetsArgs,
        output_model=sets.BrowseResult,
        handler=sets.browse_sets,
    ),
    ToolSpec(
        name="create_set",
        title="Create set",
        description="Create a set (gallery, folder or event), optionally inside another.",
        scope="api.sets.write",
        toolset="sets",
        read_only=False,
        destructive=False,
        idempotent=False,  # a repeat after the 10-minute replay window creates another
        input_model=sets.CreateSetArgs,
        output_model=sets.SetWriteResult,
        handler=sets.create_set,
    ),
    ToolSpec(
        name="update_set",
        title="Update set",
        description="Rename a set, change its colour, type, description or lead photo, or move it.",
        scope="api.sets.write",
        toolset="sets",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=sets.UpdateSetArgs,
        output_model=WriteResult,
        handler=sets.update_set,
    ),
    ToolSpec(
        name="add_to_set",
        title="Add to set",
        description="Put photos into a set.",
        scope="api.sets.write",
        toolset="sets",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=sets.SetImagesArgs,
        output_model=WriteResult,
        handler=sets.add_to_set,
    ),
    ToolSpec(
        name="remove_from_set",
        title="Remove from set",
        description="Take photos out of a set; they stay in the gallery (delete_image deletes them).",
        scope="api.sets.write",
        toolset="sets",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=sets.SetImagesArgs,
        output_model=WriteResult,
        handler=sets.remove_from_set,
    ),
    ToolSpec(
        name="arrange_set",
        title="Arrange set",
        description="Reorder the photos in a set (a full order, or some moved to the front), "
        "or its child sets.",
        scope="api.sets.write",
        toolset="sets",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=sets.ArrangeSetArgs,
        output_model=WriteResult,
        handler=sets.arrange_set,
    ),
    ToolSpec(
        name="publish_set",
        title="Publish set",
        description="Show or hide a set's photos now, or hide them until a release time (embargo). "
        "Without image_uuids, photos hidden with no release time stay so.",
        scope="api.sets.write",
        toolset="sets",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=sets.PublishSetArgs,
        output_model=sets.PublishResult,
        handler=sets.publish_set,
    ),
    ToolSpec(
        name="restore_set",
        title="Restore set",
        description="Put a set back as a snapshot had it (photos, order, visibility); asks the user first.",
        scope="api.sets.write",
        toolset="sets",
        read_only=False,
        destructive=True,
        idempotent=True,
        input_model=sets.RestoreSetArgs,
        output_model=WriteResult,
        handler=sets.restore_set,
    ),
    # ---- files
    ToolSpec(
        name="upload_image",
        title="Upload image",
        description="Add a photo from base64, an https URL or a local file, with caption, keywords and set.",
        scope="api.upload",
        toolset="files",
        read_only=False,
        destructive=False,
        idempotent=False,  # a repeat after the 10-minute replay window creates another
        input_model=files.UploadImageArgs,
        output_model=files.UploadResult,
        handler=files.upload_image,
    ),
    ToolSpec(
        name="get_download_link",
        title="Get download link",
        description="Get an expiring download link for one photo (the original by default), "
        "or list ready ZIPs.",
        scope="api.download",
        toolset="files",
        read_only=False,
        destructive=False,
        idempotent=True,
        input_model=files.GetDownloadLinkArgs,
        output_model=files.DownloadResult,
        handler=files.get_download_link,
    ),
    ToolSpec(
        name="build_archive",
        title="Build archive",
        description="Make a ZIP of photos and return its expiring link, size and count.",
        scope="api.download",
        toolset="files",
        read_only=False,
        destructive=False,
        idempotent=False,  # a repeat after the 10-minute replay window creates another
        input_model=files.BuildArchiveArgs,
        output_model=files.ArchiveResult,
        handler=files.build_archive,
    ),
    # ---- account
    ToolSpec(
        name="check_operation",
        title="Check operation",
        description="Wait for a write that was still running when its tool returned; say how it ended.",
        scope="",
        toolset="account",
        read_only=True,
        destructive=False,
        idempotent=True,
        input_model=account.CheckOperationArgs,
        output_model=account.OperationResult,
        handler=account.check_operation,
    ),
    ToolSpec(
        name="get_guide",
        title="Get DPG guide",
        description="DPG's guide for agents (llms.txt), when the server instructions are not shown.",
        scope="",
        toolset="account",
        read_only=True,
        destructive=False,
        idempotent=True,
        input_model=account.GetGuideArgs,
        output_model=account.GuideResult,
        handler=account.get_guide,
    ),
)


# Tools whose input schema depends on the token: name -> capabilities -> input model.
_INPUT_VARIANTS: dict[str, Callable[[frozenset[str]], type[BaseModel]]] = {
    "caption_image": images.caption_args_for,
}


def input_model_for(spec: ToolSpec, capabilities: Iterable[str]) -> type[BaseModel]:
    """The input model this token is shown and validated against. Pure, like visible_tools."""
    variant = _INPUT_VARIANTS.get(spec.name)
    return variant(frozenset(capabilities)) if variant is not None else spec.input_model


def publishes_output_schema(spec: ToolSpec) -> bool:
    """The plain write result is described once in the server instructions, not 12 times in tools/list."""
    return spec.output_model is not WriteResult


def visible_tools(
    capabilities: Iterable[str], *, read_only: bool = False, toolsets: Collection[str] | None = None
) -> list[ToolSpec]:
    """The tools a token may see, in table order. Pure: the same inputs always give the same list."""
    caps = frozenset(capabilities)
    return [
        t
        for t in TOOLS
        if (not t.scope or t.scope in caps)
        and (not read_only or t.read_only)
        and (toolsets is None or t.toolset in toolsets)
    ]


__all__ = [
    "TOOLS",
    "TOOLSETS",
    "ToolContext",
    "ToolResult",
    "ToolSpec",
    "input_model_for",
    "publishes_output_schema",
    "visible_tools",
]
