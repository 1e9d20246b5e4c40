"""Reading the generation prompt that image generators embed in their output files: one public
reader (:mod:`.reader`, which tries the sources in order and documents them), shared types and
helpers (:mod:`.common`), file containers (:mod:`.containers`: PNG chunks, EXIF, XMP) and one
module per family of formats (:mod:`.comfyui`, :mod:`.invokeai`, :mod:`.novelai`, :mod:`.exif_xmp`,
:mod:`.stealth`; the A1111 infotext grammar, which several of them use, is in :mod:`.common`)."""

from .common import MAX_PROMPT_CHARS, EmbeddedPrompt, PathLike
from .reader import read_embedded_prompt, read_embedded_prompts

__all__ = ['MAX_PROMPT_CHARS', 'EmbeddedPrompt', 'PathLike', 'read_embedded_prompt', 'read_embedded_prompts']
