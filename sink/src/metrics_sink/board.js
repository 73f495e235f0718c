// the KPI board (written with point 8)
