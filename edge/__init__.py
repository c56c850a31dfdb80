"""What runs at the enterprise: simulated sensors and gateways, and the bulk publisher."""

from __future__ import annotations

from edge.profiles import SensorProfile, profile_for
from edge.publisher import BulkPublisher, reading_topic

__all__ = ["BulkPublisher", "SensorProfile", "profile_for", "reading_topic"]
