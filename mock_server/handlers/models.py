"""GET /v1/models (001 "Provider routing": "Browse available models"; the OpenAI list shape), and the
model look-up the media endpoints share.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from mock_server.catalogue import Model
from mock_server.context import Call
from mock_server.errors import ApiError
from mock_server.handlers import handles

#: ``created`` of every catalogue model, in Unix s: the timestamp of 002's example responses.
CATALOGUE_CREATED = 1715000000


@handles("listModels")
async def list_models(call: Call) -> Response:
    """The catalogue as ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by",
    "input_modalities", "output_modalities"}, ...]}``, in catalogue order."""
    data = [model.as_openai(CATALOGUE_CREATED) for model in call.services.models.values()]
    return JSONResponse({"object": "list", "data": data})


@handles("retrieveModel")
async def retrieve_model(call: Call) -> Response:
    """One catalogue model as ``{"id", "object": "model", "created", "owned_by", "input_modalities",
    "output_modalities"}`` (the official SDK's ``models.retrieve``). Raises ApiError 404
    ``invalid_request_error`` with param ``model`` and code ``model_not_found`` for an id the catalogue
    lacks (OpenAI's answer; served as the stand-in's entry when ``unknown_models.serve`` is on)."""
    model_id = call.params["model"]
    model = call.services.catalogue.find(model_id, call.operation.operation_id)
    if model is None:
        raise ApiError(404, f"The model '{model_id}' does not exist or you do not have access to it.",
                       param="model", code="model_not_found")
    return JSONResponse(model.as_openai(CATALOGUE_CREATED))


def serving_model(call: Call, family: str, what: str) -> Model:
    """The catalogue model the body's ``model`` names if it serves operation ``family`` (``image_generation``
    ...); an unknown id is served by the operation's stand-in when ``unknown_models.serve`` is on.

    ``what`` names the operation in the message (``image generation``). Raises ApiError 400 with
    param ``model``: code ``model_not_found`` for an unknown id, ``model_not_supported`` for a model
    that does not serve ``family`` (001 "Provider routing": the model id picks the upstream).
    """
    services = call.services
    model_id = call.body["model"]
    model = services.catalogue.find(model_id, call.operation.operation_id)
    if model is None:
        raise ApiError(400, f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
    if family not in model.serves:
        able = sorted(m.id for m in services.models.values() if family in m.serves)
        raise ApiError(400, f"The model '{model_id}' does not support {what}; models that do: {', '.join(able)}.",
                       param="model", code="model_not_supported")
    return model
