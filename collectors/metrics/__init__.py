"""Ubuntu community metrics: collectors that write InfluxDB points, and their framework."""
