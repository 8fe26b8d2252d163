"""The DGC (Digital Grid Controller) side: a meter controller that keeps cumulative registers,
applies the metering rule and signs readings. Protocol adapters (ECHONET Lite, SunSpec) come later
and turn vendor frames into the same ``IntervalEnergy`` values."""
