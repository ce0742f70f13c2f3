"""Clix users API (secret key) and SDK device ingestion (public or secret key)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from clarion.users import service
from clarion.users.schemas import (
    DevicesIn,
    DevicesOut,
    IdentifyIn,
    IdentifyOut,
    UserPatch,
    UserProperties,
    UserUpsert,
)
from clarion.web import AnyKey, SecretKey, state

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.post("/users", response_model=UserProperties, summary="Create or update a user")
def upsert_user(body: UserUpsert, principal: SecretKey, request: Request) -> UserProperties:
    with state(request).db.write() as session:
        user = service.upsert_user(
            session, principal.project_id, body.project_user_id, body.properties
        )
        return UserProperties(properties=user.properties)


@router.patch(
    "/users/{project_user_id}", response_model=UserProperties, summary="Update user properties"
)
def patch_user(
    project_user_id: str, body: UserPatch, principal: SecretKey, request: Request
) -> UserProperties:
    with state(request).db.write() as session:
        user = service.patch_user(session, principal.project_id, project_user_id, body.properties)
        return UserProperties(properties=user.properties)


@router.delete("/users/{project_user_id}", summary="Delete a user and its data")
def delete_user(project_user_id: str, principal: SecretKey, request: Request) -> dict[str, str]:
    with state(request).db.write() as session:
        service.delete_user(session, principal.project_id, project_user_id)
    return {}


@router.post("/devices", response_model=DevicesOut, summary="Create or update devices (SDK)")
def upsert_devices(body: DevicesIn, principal: AnyKey, request: Request) -> DevicesOut:
    with state(request).db.write() as session:
        out = [service.upsert_device(session, principal.project_id, d) for d in body.devices]
    return DevicesOut(devices=out)


@router.post(
    "/devices/{device_id}/user/project-user-id",
    response_model=IdentifyOut,
    summary="Identify: link a device to a project user (SDK)",
)
def identify(device_id: str, body: IdentifyIn, principal: AnyKey, request: Request) -> IdentifyOut:
    with state(request).db.write() as session:
        service.identify(session, principal.project_id, device_id, body.project_user_id)
    return IdentifyOut(device_id=device_id, project_user_id=body.project_user_id)
