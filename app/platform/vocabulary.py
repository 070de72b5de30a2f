"""The domain vocabulary the API speaks, re-exported for the API layer.

Form factors, propulsion types, vehicle equipment and currency minor units are defined once,
where operator data is normalised (``adapters``); the public API reaches them through ``app``
like everything else.
"""

from adapters.dto import FormFactor, PropulsionType, VehicleEquipment
from adapters.money import currency_exponent

__all__ = ["FormFactor", "PropulsionType", "VehicleEquipment", "currency_exponent"]
