package aggregate_test
func init() { benchHours = 4 }
