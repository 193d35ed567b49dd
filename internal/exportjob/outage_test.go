package exportjob

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// outageCredential fails its first n token requests (the identity endpoint
// down, as in a managed identity outage), then asks the real one.
type outageCredential struct {
	azcore.TokenCredential
	n atomic.Int64
}

func (c *outageCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if c.n.Add(-1) >= 0 {
		return azcore.AccessToken{}, errors.New("ManagedIdentityCredential: IMDS token request failed: 503 Service Unavailable")
	}
	return c.TokenCredential.GetToken(ctx, o)
}

// TestIdentityAndRBACOutagesAreRetried: hours asked while the identity gets
// no token, or while its role assignment is missing (403), are asked again
// when it is back, not failed after MaxAttempts: an outage of the identity
// says nothing about the hour.
func TestIdentityAndRBACOutagesAreRetried(t *testing.T) {
	keys := testKeys(2)
	for _, tc := range []struct {
		name  string
		setup func(e *env)
	}{
		{"no token", func(e *env) {
			e.cl.Credential = &outageCredential{TokenCredential: e.cl.Credential}
			e.cl.Credential.(*outageCredential).n.Store(int64(4 * len(keys) * e.cfg.MaxAttempts))
		}},
		{"403 from the API", func(e *env) {
			e.api.CreateFault = func(n int) (int, bool) {
				if n <= 4*len(keys)*e.cfg.MaxAttempts {
					return http.StatusForbidden, false
				}
				return 0, false
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			s := e.scheduler(localStore(t), nil)
			// The outage lasts passes past MaxAttempts per hour.
			for range 4 * e.cfg.MaxAttempts {
				sum, _ := s.Pass(context.Background(), append([]Key(nil), keys...))
				if sum.Failed > 0 || sum.Done > 0 {
					t.Fatalf("during the outage: %+v", sum)
				}
			}
			allFinal(t, s, keys, 8)
			checkOnce(t, e, keys, nil)
			checkSucceeded(t, s, keys)
		})
	}
}

// TestAmbiguousCreateIsLookedUp: a create answered 502 after the job was
// made, every time. After the lease the job's output folder shows the job:
// it is tracked, not asked for again, and the hour succeeds with one job
// (it used to ask three times and mark the hour failed though three jobs
// ran).
func TestAmbiguousCreateIsLookedUp(t *testing.T) {
	e := newEnv(t)
	out := localStore(t)
	for _, c := range e.cfg.Containers {
		if err := out.EnsureContainer(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	e.api.Output = out
	e.api.CreateFault = func(int) (int, bool) { return http.StatusBadGateway, true }
	keys := testKeys(1)
	c := &clock{}
	s := e.scheduler(localStore(t), c)
	s.Output = out
	for range e.cfg.MaxAttempts + 2 {
		s.Pass(context.Background(), append([]Key(nil), keys...))
		c.advance(e.cfg.Lease + time.Second)
	}
	sum := allFinal(t, s, keys, 6)
	checkOnce(t, e, keys, nil)
	checkSucceeded(t, s, keys)
	states, _ := s.States(context.Background(), time.Time{}, time.Time{})
	for _, st := range states {
		if st.Attempts != 1 {
			t.Errorf("%s: %d attempts, want 1", st.Key(), st.Attempts)
		}
	}
	t.Logf("last pass: %+v", sum)

	// No output (yet): the hour is asked again, as before.
	if id, err := FindJob(context.Background(), out, e.cfg.Containers[TableInteractive], keys[0].Hour.Add(time.Hour)); err != nil || id != "" {
		t.Errorf("FindJob for an hour never exported: %q, %v", id, err)
	}
	if _, err := FindJob(context.Background(), out, "no-such-container", keys[0].Hour); err != nil {
		t.Errorf("FindJob in a container not made yet: %v", err)
	}
}

// TestStuckJobsFreeTheirSlots: jobs that never finish (InProgress forever,
// or a status value nobody documented) stop counting against MaxActive once
// past StuckAfter, so the later hours are requested and finish.
func TestStuckJobsFreeTheirSlots(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxActive = 2
	keys := testKeys(2) // 4 table-hours, 2 slots
	stuck := map[string][]string{keys[0].String(): {"InProgress"}, keys[1].String(): {"Paused"}}
	e.api.Plan = func(table string, start time.Time, retry int) []string {
		if p, ok := stuck[Key{table, start}.String()]; ok {
			return p
		}
		return []string{"Queued", "InProgress", "Succeeded"}
	}
	c := &clock{}
	s := e.scheduler(localStore(t), c)
	var sum Summary
	for range 4 {
		sum, _ = s.Pass(context.Background(), append([]Key(nil), keys...))
	}
	if sum.Deferred != 2 || sum.Running != 2 {
		t.Fatalf("before the stuck limit: %+v", sum)
	}
	c.advance(e.cfg.StuckAfter + time.Minute)
	for range 6 {
		sum, _ = s.Pass(context.Background(), append([]Key(nil), keys...))
	}
	if sum.Stuck != 2 || sum.Deferred != 0 || sum.Phases[keys[2]] != PhaseSucceeded || sum.Phases[keys[3]] != PhaseSucceeded {
		t.Errorf("after the stuck limit: %+v", sum)
	}
	checkOnce(t, e, keys, nil)
}
