"""Mininet + OVS emulations of a scenario.

Importing Mininet makes every logger created afterwards a `MininetLogger`, each with its own
handler that writes to stderr without a newline: every warning of ours would then be printed
twice, once glued to the next line. The logger class is set back here, before any of this
package's modules (or what they import) create loggers.
"""

import logging

import mininet.log  # noqa: F401 - imported for its side effect, undone below

logging.setLoggerClass(logging.Logger)
