package gen

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

func labeledRun(t *testing.T, o LabeledOptions) []*LabeledUser {
	t.Helper()
	var out []*LabeledUser
	if err := GenerateLabeled(o, func(u *LabeledUser) error { out = append(out, u); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// The labeled tenant is a pure function of its options, labels every row,
// plants every variant the asked number of times, and carries the columns
// the precision modes read.
func TestLabeledTenant(t *testing.T) {
	p := Profiles()[4] // weak45%/high
	o := LabeledOptions{Users: 600, Days: 5, Seed: 9, AttacksPerVariant: 2, Profile: p}
	a, b := labeledRun(t, o), labeledRun(t, o)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs with the same options differ")
	}
	instances := map[string]map[int]bool{}
	behaviours := map[string]int{}
	ids := map[string]bool{}
	for _, u := range a {
		for _, rs := range [][]signin.Record{u.Interactive, u.NonInteractive} {
			for _, r := range rs {
				if ids[r.Id] {
					t.Fatalf("Id %s twice", r.Id)
				}
				ids[r.Id] = true
				l, ok := u.Labels[r.Id]
				if !ok {
					t.Fatalf("row %s has no label", r.Id)
				}
				if r.UserPrincipalName != u.UPN || r.Extra == nil || r.Extra.SessionId == "" || r.Extra.AutonomousSystemNumber == "" {
					t.Fatalf("row %s: %+v", r.Id, r)
				}
				if _, err := netip.ParseAddr(r.IPAddress); err != nil {
					t.Fatalf("row %s: IP %q", r.Id, r.IPAddress)
				}
				if v, inst, ok := AttackLabel(l); ok {
					if instances[v] == nil {
						instances[v] = map[int]bool{}
					}
					instances[v][inst] = true
				} else {
					behaviours[strings.TrimPrefix(l, "benign:")]++
				}
			}
		}
		if len(u.Labels) != len(u.Interactive)+len(u.NonInteractive) {
			t.Fatalf("%s: %d labels for %d rows", u.UPN, len(u.Labels), len(u.Interactive)+len(u.NonInteractive))
		}
	}
	for _, v := range Variants {
		if len(instances[v.ID]) != o.AttacksPerVariant {
			t.Errorf("variant %s: %d instances, want %d", v.ID, len(instances[v.ID]), o.AttacksPerVariant)
		}
	}
	// Every behaviour the profile turns on shows up (B4 needs a SASE share).
	for _, b := range []string{"B0", "B1", "B2", "B3", "B5", "B6", "B7", "B8", "B9"} {
		if behaviours[b] == 0 {
			t.Errorf("no %s rows in %v", b, behaviours)
		}
	}
	// The tenant's SASE egress is what SafeNetworks lists.
	for _, n := range SafeNetworks() {
		if _, err := netip.ParsePrefix(n); err != nil {
			t.Errorf("safe network %q: %v", n, err)
		}
	}
	if _, err := WriteLabeled(LabeledOptions{Users: 10, Days: 1, Seed: 1, AttacksPerVariant: 0, Profile: p}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := GenerateLabeled(LabeledOptions{Users: 5, Days: 1, AttacksPerVariant: 1, Profile: p}, func(*LabeledUser) error { return nil }); err == nil {
		t.Error("18 instances planted on 5 users")
	}
}
