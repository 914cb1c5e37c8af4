"""Operations assets: the Grafana dashboard, Prometheus alert rules and configs, and where the shipped files live."""
