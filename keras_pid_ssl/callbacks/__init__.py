"""Callbacks: the PID training protocol and training monitors."""

from keras_pid_ssl.callbacks.pid_monitor import PIDMonitor
from keras_pid_ssl.callbacks.pid_protocol import PIDProtocol
