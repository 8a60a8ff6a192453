"""Behavioural checks of multimodal input on the multi-protocol gateway's chat (003).

003 "Tips": "Make sure the audio base64 string has no line breaks or extra prefix/suffix": an
``input_audio`` part with wrapped base64 (76-character lines, as MIME encoders write it) or a
``data:`` URL prefix is refused naming the part.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from conformance.checks import REGISTRY
from conformance.golden import media_file
from conformance.http import TargetClient
from conformance.target import Target
from spec import find_operation

API = "multi_protocol"
CHAT = find_operation(API, "createChatCompletion")

#: variant -> the malformed ``input_audio.data`` of a WAV file's bytes
MALFORMED: dict[str, Callable[[bytes], str]] = {
    "line_breaks": lambda audio: base64.encodebytes(audio).decode("ascii"),
    "data_url_prefix": lambda audio: "data:audio/wav;base64," + base64.b64encode(audio).decode("ascii"),
}


@pytest.mark.api(API, operation="createChatCompletion")
@pytest.mark.check("malformed_audio_base64_refused")
@pytest.mark.parametrize("variant", sorted(MALFORMED))
def test_malformed_audio_base64(variant: str, client: TargetClient, target: Target) -> None:
    data = MALFORMED[variant](media_file("wav"))
    body = {"model": target.model("audio_input"), "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is said here?"},
        {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}]}]}
    REGISTRY["malformed_audio_base64_refused"](client.request("POST", CHAT.path, json_body=body), CHAT)
