"""What each mining run measured and keeps: the detectors' calibration, the run's record, the stored taxonomy."""
