"""The model catalogue (``data/models.yaml``): which models exist and what each takes and gives.

Seeds: 003 "Multimodal input" (support for a media type depends on the model), 002 "Native
image generation" (models with image output capability).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mock_server.sim.spend import Price
from spec import load_yaml

DEFAULT_CATALOGUE = Path(__file__).resolve().parent / "data" / "models.yaml"

#: Content part ``type`` -> the input modality it needs.
PART_MODALITY: Mapping[str, str] = {
    "text": "text",
    "image_url": "image",
    "input_audio": "audio",
    "video_url": "video",
    "video": "video",
    "file": "file",
}

#: Operation families a catalogue entry may list under ``serves``: chat (chat completions and the
#: other conversation endpoints), image_generation, image_edit, speech, transcription, translation
#: (000 "Picking the right endpoint": understanding goes through chat, generation has its own endpoints).
OPERATION_FAMILIES = frozenset({"chat", "image_generation", "image_edit", "speech", "transcription", "translation"})
#: What an entry without ``serves`` serves.
DEFAULT_SERVES = frozenset({"chat"})
#: The operation family each operation that names a ``model`` serves (``retrieveModel``: any).
OPERATION_FAMILY: Mapping[str, str | None] = {
    "createChatCompletion": "chat", "createResponse": "chat", "createMessage": "chat", "countMessageTokens": "chat",
    "createImage": "image_generation", "createImageEdit": "image_edit", "createSpeech": "speech",
    "createTranscription": "transcription", "createTranslation": "translation", "retrieveModel": None,
}


@dataclass(frozen=True)
class Model:
    """One catalogue entry; ``input``/``output`` are modality names (text, image, audio, video, file);
    ``serves`` the operation families of :data:`OPERATION_FAMILIES` it answers (default chat)."""

    id: str
    provider: str
    input: frozenset[str]
    output: frozenset[str]
    tools: bool
    structured_output: bool
    streaming: bool
    serves: frozenset[str] = DEFAULT_SERVES
    price: Price | None = None
    """What the gateway bills for the model (002 "Pricing"; ``sim/spend.py``); None: free."""

    def as_openai(self, created: int) -> dict[str, Any]:
        """The ``model`` object of GET /v1/models (OpenAI shape, plus the modalities)."""
        return {
            "id": self.id,
            "object": "model",
            "created": created,
            "owned_by": self.provider,
            "input_modalities": sorted(self.input),
            "output_modalities": sorted(self.output),
        }


def load_catalogue(path: Path = DEFAULT_CATALOGUE) -> dict[str, Model]:
    """Read a catalogue file into ``{model id: Model}``. Raises ValueError on a malformed entry."""
    data = load_yaml(path.read_text(encoding="utf-8"))
    models: dict[str, Model] = {}
    for entry in data.get("models", []):
        try:
            model = Model(
                id=str(entry["id"]),
                provider=str(entry["provider"]),
                input=frozenset(entry["input"]),
                output=frozenset(entry["output"]),
                tools=bool(entry.get("tools", False)),
                structured_output=bool(entry.get("structured_output", False)),
                streaming=bool(entry.get("streaming", True)),
                serves=frozenset(entry.get("serves", DEFAULT_SERVES)),
                price=Price.parse(entry.get("price")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: bad model entry {entry!r}: {exc}") from exc
        unknown = sorted(model.serves - OPERATION_FAMILIES)
        if unknown:
            raise ValueError(f"{path}: model {model.id!r} serves unknown operation families {unknown}")
        models[model.id] = model
    return models


class Catalogue:
    """The catalogue's models by id, and what answers for an id it lacks.

    ``stand_ins`` maps an operationId to the catalogue id that serves unknown ids for it, or is
    empty (unknown ids refused: the default, as a real gateway). Raises ValueError at start-up for a
    stand-in that is not in the catalogue or does not serve its operation's family.
    """

    def __init__(self, models: Mapping[str, Model], stand_ins: Mapping[str, str]) -> None:
        self.models = dict(models)
        self.stand_ins: dict[str, Model] = {}
        for operation_id, model_id in stand_ins.items():
            model = self.models.get(model_id)
            if model is None:
                raise ValueError(f"unknown_models.as.{operation_id}: {model_id!r} is not in the catalogue "
                                 f"(models: {', '.join(sorted(self.models))})")
            family = OPERATION_FAMILY.get(operation_id)
            if family is not None and family not in model.serves:
                raise ValueError(f"unknown_models.as.{operation_id}: {model_id!r} does not serve {family}")
            self.stand_ins[operation_id] = model

    def find(self, model_id: str, operation_id: str) -> Model | None:
        """The model that answers ``model_id`` in ``operation_id``: the catalogue's entry, else the
        operation's stand-in under the client's id, else None (the caller refuses the request)."""
        model = self.models.get(model_id)
        if model is not None:
            return model
        stand_in = self.stand_ins.get(operation_id)
        return None if stand_in is None else replace(stand_in, id=model_id)
