"""Clix users API (secret key) and SDK device ingestion (public or secret key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from clarion.users import sdk_properties, service
from clarion.users.schemas import (
    DevicesIn,
    DevicesOut,
    IdentifyIn,
    IdentifyOut,
    SdkPropertiesIn,
    SdkPropertiesOut,
    UnidentifyOut,
    UserPatch,
    UserProperties,
    UserUpsert,
)
from clarion.web import IngestKey, SdkKey, api_router, state

router = api_router("users")


@router.post("/users", response_model=UserProperties, summary="Create or update a user")
def upsert_user(body: UserUpsert, principal: IngestKey, request: Request) -> UserProperties:
    with state(request).db.write() as session:
        user = service.upsert_user(
            session, principal.project_id, body.project_user_id, body.properties
        )
        return UserProperties(properties=user.properties)


@router.patch(
    "/users/{project_user_id}", response_model=UserProperties, summary="Update user properties"
)
def patch_user(
    project_user_id: str, body: UserPatch, principal: IngestKey, request: Request
) -> UserProperties:
    with state(request).db.write() as session:
        user = service.patch_user(session, principal.project_id, project_user_id, body.properties)
        return UserProperties(properties=user.properties)


@router.delete("/users/{project_user_id}", summary="Delete a user and its data")
def delete_user(project_user_id: str, principal: IngestKey, request: Request) -> dict[str, str]:
    with state(request).db.write() as session:
        service.delete_user(session, principal.project_id, project_user_id)
    return {}


@router.post("/devices", response_model=DevicesOut, summary="Create or update devices (SDK)")
def upsert_devices(body: DevicesIn, principal: SdkKey, request: Request) -> DevicesOut:
    with state(request).db.write() as session:
        out = [service.upsert_device(session, principal.project_id, d) for d in body.devices]
    return DevicesOut(devices=out)


@router.post(
    "/devices/{device_id}/user/project-user-id",
    response_model=IdentifyOut,
    summary="Identify: link a device to a project user (SDK)",
)
def identify(device_id: str, body: IdentifyIn, principal: SdkKey, request: Request) -> IdentifyOut:
    with state(request).db.write() as session:
        service.identify(session, principal.project_id, device_id, body.project_user_id)
    return IdentifyOut(device_id=device_id, project_user_id=body.project_user_id)


@router.delete(
    "/devices/{device_id}/user/project-user-id",
    response_model=UnidentifyOut,
    summary="Un-identify: the device gets a new anonymous user (SDK)",
)
def unidentify(device_id: str, principal: SdkKey, request: Request) -> UnidentifyOut:
    with state(request).db.write() as session:
        user = service.unidentify(session, principal.project_id, device_id)
        return UnidentifyOut(device_id=device_id, user_id=user.id)


@router.post(
    "/devices/{device_id}/user/properties",
    response_model=SdkPropertiesOut,
    summary="Set typed properties on the device's user (SDK)",
)
def set_properties(
    device_id: str, body: SdkPropertiesIn, principal: SdkKey, request: Request
) -> SdkPropertiesOut:
    with state(request).db.write() as session:
        out = sdk_properties.set_properties(
            session, principal.project_id, device_id, body.properties
        )
    return SdkPropertiesOut(properties=out)


@router.delete(
    "/devices/{device_id}/user/properties",
    summary="Remove properties from the device's user (SDK)",
)
def remove_properties(
    device_id: str,
    principal: SdkKey,
    request: Request,
    names: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
    property_names: Annotated[list[str], Query()] = [],  # noqa: B006
) -> dict[str, str]:
    wanted = sdk_properties.names_from_query(names, property_names)
    with state(request).db.write() as session:
        sdk_properties.remove_properties(session, principal.project_id, device_id, wanted)
    return {}
