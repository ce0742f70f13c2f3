"""A project's delivery settings over the management API: frequency caps per channel and
quiet hours (campaigns set their own controls in their ``delivery`` section)."""

from __future__ import annotations

from fastapi import Request

from clarion.delivery import controls
from clarion.delivery.controls import ProjectDelivery
from clarion.web import AdminKey, ReadKey, api_router, state

router = api_router("delivery")


@router.get("/project/delivery", response_model=ProjectDelivery,
            summary="The project's frequency caps and quiet hours")  # fmt: skip
def get_delivery(principal: ReadKey, request: Request) -> ProjectDelivery:
    with state(request).db.read() as session:
        return controls.project_settings(session, principal.project_id)


@router.put("/project/delivery", response_model=ProjectDelivery,
            summary="Set the project's frequency caps and quiet hours")  # fmt: skip
def put_delivery(body: ProjectDelivery, principal: AdminKey, request: Request) -> ProjectDelivery:
    """Replaces both: ``frequency_caps`` per channel (``{"push": {"max": 3, "per_hours":
    24}}``) and ``quiet_hours`` (``{"start": "22:00", "end": "08:00", "action": "delay"}``,
    or null for none)."""
    with state(request).db.write() as session:
        return controls.save_project_settings(session, principal.project_id, body,
                                              principal.actor)  # fmt: skip
