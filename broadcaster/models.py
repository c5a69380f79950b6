"""The registry: every model, imported here so metadata and Alembic see every table and
the rest of the service reads each table from one place. The domain model modules import
only :mod:`broadcaster.orm` and each other, never this module."""

import broadcaster.cap.models  # noqa: F401 - registers the CAP tables (import from there)
from broadcaster.areas.models import Organisation, UserArea
from broadcaster.audit.models import AuditEvent
from broadcaster.campaigns.models import Campaign, CampaignMessage, CampaignState, Channel, Priority
from broadcaster.communities.models import Community, CommunityKind
from broadcaster.contacts.models import (
    ConsentSource,
    Contact,
    ContactImport,
    ContactStatus,
    Membership,
)
from broadcaster.deliveries.models import Delivery, DeliveryState, SkipReason
from broadcaster.inbound.models import InboundMessage
from broadcaster.orm import Base
from broadcaster.templates.models import Template, TemplateVariant, TemplateVersion
from broadcaster.users.models import ApiToken, Role, User

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "Campaign",
    "CampaignMessage",
    "CampaignState",
    "Channel",
    "Community",
    "CommunityKind",
    "ConsentSource",
    "Contact",
    "ContactImport",
    "ContactStatus",
    "Delivery",
    "DeliveryState",
    "InboundMessage",
    "Membership",
    "Organisation",
    "Priority",
    "Role",
    "SkipReason",
    "Template",
    "TemplateVariant",
    "TemplateVersion",
    "User",
    "UserArea",
]
