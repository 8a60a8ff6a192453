"""The system under test: where it is, how to authenticate, and which model serves each capability."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

#: Model per capability when the target names none: the ids the seed documents use.
DEFAULT_MODELS: Mapping[str, str] = MappingProxyType({
    "chat": "gpt-4o-mini",                              # 001 examples use OpenAI-compatible ids
    "vision": "openai/gpt-5-mini",                      # 003 "Image input"
    "audio_input": "openai/gpt-5-mini",                 # 003 "Audio input"
    "video_input": "openai/gpt-5-mini",                 # 003 "Video input"
    "image_output": "gemini-2.5-flash-image-generation",  # 002 "Native image generation"
})


@dataclass(frozen=True)
class Target:
    """``base_url`` is the server root (``http://127.0.0.1:8000``): spec paths carry ``/v1`` themselves."""

    name: str
    base_url: str
    api_key: str
    models: Mapping[str, str] = field(default_factory=lambda: DEFAULT_MODELS)

    def model(self, capability: str) -> str:
        """The model id to use for ``capability`` (chat, vision, image_output, ...)."""
        return self.models.get(capability, self.models.get("chat", DEFAULT_MODELS["chat"]))


def root_url(url: str) -> str:
    """Normalise a target URL to its server root: no trailing slash, no trailing ``/v1``."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def name_for(url: str) -> str:
    """A file-system-safe target name from a URL: ``api.example.com_8443``."""
    parts = urlsplit(url)
    raw = parts.netloc or parts.path or "target"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_") or "target"
