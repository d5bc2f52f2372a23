"""Process control: identity checks and signals, the session→process registry, the control API,
emitter control messages, the audit log, budgets and runaway policy. Contract: ``docs/control.md``.

The live view gets its :class:`~tokentop.core.control.port.Controller` from
:func:`tokentop.core.control.controller.build_controller`.
"""
