"""The dashboard: FastAPI app (REST + WebSocket push), sensor control, metrics.

``flowscope run`` serves it by default and ``flowscope demo`` shows it working on a
shipped capture; see docs/dashboard.md.
"""

from flowscope.web.app import DashboardState, create_app
from flowscope.web.control import SensorController
from flowscope.web.security import SecurityPolicy

__all__ = ["DashboardState", "SecurityPolicy", "SensorController", "create_app"]
