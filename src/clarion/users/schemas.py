"""Request and response shapes of the Clix users and devices endpoints."""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clarion import limits

PROPERTY_KEY_MAX = 128


def _check_keys(properties: dict[str, Any]) -> dict[str, Any]:
    limits.check_properties(properties)
    for key in properties:
        if not key or len(key) > PROPERTY_KEY_MAX:
            raise ValueError(f"property names must be 1 to {PROPERTY_KEY_MAX} characters: {key!r}")
    return properties


class UserUpsert(BaseModel):
    project_user_id: str = Field(min_length=1, max_length=255)
    properties: dict[str, Any] = Field(default_factory=dict)

    _keys = field_validator("properties")(_check_keys)


class UserPatch(BaseModel):
    properties: dict[str, Any] = Field(default_factory=dict)

    _keys = field_validator("properties")(_check_keys)


class UserProperties(BaseModel):
    properties: dict[str, Any]


class DeviceIn(BaseModel):
    """A device as the Clix SDKs send it; unknown fields are kept."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        """The SDKs send null for what they do not know (ad_id, push_token, ...)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k not in cls.model_fields}
        return data

    id: str = Field(min_length=1, max_length=255)
    platform: str = Field(default="", max_length=20)
    model: str = ""
    manufacturer: str = ""
    os_name: str = ""
    os_version: str = ""
    locale_region: str = Field(default="", max_length=20)
    locale_language: str = Field(default="", max_length=20)
    timezone: str = Field(default="", max_length=64)
    app_name: str = ""
    app_version: str = Field(default="", max_length=64)
    sdk_type: str = Field(default="", max_length=32)
    sdk_version: str = ""
    ad_id: str = ""
    is_push_permission_granted: bool = False
    push_token: str = Field(default="", max_length=4096)
    push_token_type: str = Field(default="", max_length=20)


def _field_limits() -> dict[str, tuple[type, int, int]]:
    """(type, min length, max length) of each declared DeviceIn field, from its metadata."""
    limits = {}
    for name, info in DeviceIn.model_fields.items():
        low, high = 0, 1 << 62
        for item in info.metadata:
            low = getattr(item, "min_length", low)
            high = getattr(item, "max_length", high)
        limits[name] = (cast(type, info.annotation), low, high)
    return limits


_DEVICE_LIMITS = _field_limits()
# Every declared field in declaration order (the model's dump order), with its default.
_DEVICE_DEFAULTS = {
    n: None if f.is_required() else f.default for n, f in DeviceIn.model_fields.items()
}


def device_attributes(raw: Any) -> dict[str, Any]:
    """``DeviceIn.model_validate(raw).model_dump(mode="json")``, without pydantic's cost when
    every declared field already has its exact type and length (the bulk importer's case:
    about four times faster). Anything else goes through the model, so the result and the
    errors are the model's."""
    if type(raw) is dict and "id" in raw:
        for key, value in raw.items():
            limit = _DEVICE_LIMITS.get(key)
            if limit is None or value is None:
                continue
            kind, low, high = limit
            if type(value) is not kind:
                break
            if kind is str and not low <= len(cast(str, value)) <= high:
                break
        else:
            if raw["id"] is not None:  # the one required field
                attributes = dict(_DEVICE_DEFAULTS)
                for key, value in raw.items():
                    if value is not None or key not in _DEVICE_LIMITS:
                        attributes[key] = value
                return attributes
    return DeviceIn.model_validate(raw).model_dump(mode="json")


class DeviceOut(DeviceIn):
    user_id: str


class DevicesIn(BaseModel):
    devices: list[DeviceIn] = Field(min_length=1, max_length=100)


class DevicesOut(BaseModel):
    devices: list[DeviceOut]


class IdentifyIn(BaseModel):
    project_user_id: str = Field(min_length=1, max_length=255)


class IdentifyOut(BaseModel):
    device_id: str
    project_user_id: str


class SdkProperty(BaseModel):
    """One user property as the SDKs send it: Android ``value`` (a string), iOS ``value``
    (a JSON value), React Native ``value_string``. ``type`` says how to read it."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=PROPERTY_KEY_MAX)
    type: str = "USER_PROPERTY_TYPE_STRING"
    value: Any = None
    value_string: str | None = None


class SdkPropertiesIn(BaseModel):
    properties: list[SdkProperty] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _limits(self) -> SdkPropertiesIn:
        for i, prop in enumerate(self.properties):
            limits.check_properties(prop.value, f"$.properties[{i}].value")
            limits.check_properties(prop.value_string, f"$.properties[{i}].value_string")
        return self


class SdkPropertyOut(BaseModel):
    name: str
    type: str
    value: Any
    value_string: str


class SdkPropertiesOut(BaseModel):
    properties: list[SdkPropertyOut]


class UnidentifyOut(BaseModel):
    device_id: str
    user_id: str = Field(description="The device's new anonymous user.")
