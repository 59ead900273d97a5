"""carbonshift: plan ML training for the cleanest hours and regions."""

import logging

# A library logs to its own logger and lets the application decide where that goes.
logging.getLogger("carbonshift").addHandler(logging.NullHandler())
