package store

import (
	"context"
	"errors"
	"fmt"
)

// QuarantinePrefix is where MoveAside keeps state objects that could not be
// read, in the same container, under their own name.
const QuarantinePrefix = "quarantine/"

// MoveAside copies an unreadable state object to QuarantinePrefix+name and
// deletes the original if it is still the version read (etag), so that the
// caller can rebuild it while the bad bytes stay for a person to inspect. A
// blob already gone or already replaced is not an error: someone else moved
// or rebuilt it. It returns the quarantined name.
func MoveAside(ctx context.Context, s Store, container, name, etag string) (string, error) {
	aside := QuarantinePrefix + name
	data, props, err := s.Read(ctx, container, name)
	if errors.Is(err, ErrNotExist) {
		return aside, nil
	}
	if err != nil {
		return "", fmt.Errorf("move aside %s: %w", s.URL(container, name), err)
	}
	if etag != "" && props.ETag != etag {
		return aside, nil // replaced since it was read
	}
	if _, err := s.Write(ctx, container, aside, data, Condition{}); err != nil {
		return "", fmt.Errorf("move aside %s: %w", s.URL(container, name), err)
	}
	err = s.Delete(ctx, container, name, Condition{IfMatch: props.ETag})
	if err != nil && !errors.Is(err, ErrNotExist) && !errors.Is(err, ErrConditionNotMet) {
		return "", fmt.Errorf("move aside %s: %w", s.URL(container, name), err)
	}
	return aside, nil
}
