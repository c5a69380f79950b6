"""All models, imported here so metadata and Alembic see every table."""

import broadcaster.models.cap  # noqa: F401 - registers the CAP tables (import from there)
from broadcaster.models.audit import AuditEvent
from broadcaster.models.base import Base
from broadcaster.models.campaign import Campaign, CampaignMessage, CampaignState, Channel, Priority
from broadcaster.models.community import Community, CommunityKind
from broadcaster.models.contact import ConsentSource, Contact, ContactStatus, Membership
from broadcaster.models.delivery import Delivery, DeliveryState, SkipReason
from broadcaster.models.inbound import InboundMessage
from broadcaster.models.template import Template, TemplateVariant, TemplateVersion
from broadcaster.models.user import ApiToken, Role, User

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
    "ContactStatus",
    "Delivery",
    "DeliveryState",
    "InboundMessage",
    "Membership",
    "Priority",
    "Role",
    "SkipReason",
    "Template",
    "TemplateVariant",
    "TemplateVersion",
    "User",
]
