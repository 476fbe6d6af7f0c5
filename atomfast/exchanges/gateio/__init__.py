"""Gate.io v4: spot (``gateio``) and USDT perpetuals (``gateio-futures``): see ``handler``."""
from .handler import GateioFuturesScheme, GateioScheme

__all__ = ["GateioFuturesScheme", "GateioScheme"]
