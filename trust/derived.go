package trust

// secondsPerDay turns a span of unix seconds into whole days.
const secondsPerDay = 86400

// Derived holds trust signals computed from the BindID trust profile, relative to the
// moment of authentication (ReferenceTime), never to the wall clock: the same claims always
// give the same signals, and they stay the same for the whole session. doc.go defines each
// one precisely. Pointers are nil when the signal cannot be computed; zero is a real value.
type Derived struct {
	// ReferenceTime is the auth_time claim, else the iat claim (unix seconds).
	ReferenceTime int64 `json:"reference_time"`
	// NewDevice: this app has seen no earlier login from the authenticating device. nil
	// when bindid_info is absent.
	NewDevice *bool `json:"new_device,omitempty"`
	// AccountAgeDays is the number of whole days from user_registration_time to
	// ReferenceTime.
	AccountAgeDays *int64 `json:"account_age_days,omitempty"`
	// DeviceKnownSince is the earliest of authenticating_device_registration_time and
	// capp_first_login_from_authenticating_device (unix seconds); 0 when both are absent.
	DeviceKnownSince int64 `json:"device_known_since,omitempty"`
	// DeviceAgeDays is the number of whole days from DeviceKnownSince to ReferenceTime.
	DeviceAgeDays *int64 `json:"device_age_days,omitempty"`
	// DaysSinceLastLogin is the number of whole days from capp_last_login to
	// ReferenceTime.
	DaysSinceLastLogin *int64 `json:"days_since_last_login,omitempty"`
}

// newDerived computes the derived signals of p, whose BindID and AuthTime are already set.
// It returns nil without a BindID profile or without a reference time.
func newDerived(claims map[string]any, p *Profile) *Derived {
	b := p.BindID
	if b == nil {
		return nil
	}
	ref := p.AuthTime
	if ref == 0 {
		ref = unixClaim(claims["iat"])
	}
	if ref == 0 {
		return nil
	}
	d := &Derived{ReferenceTime: ref}
	if _, ok := claims["bindid_info"].(map[string]any); ok {
		// The first login from this device is absent (never seen), or it is also the last
		// one (the only login the app has seen from this device).
		isNew := b.DeviceFirstLogin == 0 || b.DeviceFirstLogin == b.DeviceLastLogin
		d.NewDevice = &isNew
	}
	d.AccountAgeDays = daysBetween(b.UserRegistered, ref)
	d.DeviceKnownSince = earliest(b.DeviceRegistered, b.DeviceFirstLogin)
	d.DeviceAgeDays = daysBetween(d.DeviceKnownSince, ref)
	d.DaysSinceLastLogin = daysBetween(b.LastLogin, ref)
	return d
}

// daysBetween returns floor((ref-since)/86400), or nil when since is absent (0) or after
// ref. Both are positive, so the difference cannot overflow.
func daysBetween(since, ref int64) *int64 {
	if since <= 0 || since > ref {
		return nil
	}
	days := (ref - since) / secondsPerDay // non-negative, so division is floor
	return &days
}

// earliest returns the smaller of the positive values among a and b; 0 when neither is.
func earliest(a, b int64) int64 {
	switch {
	case a <= 0:
		return max(b, 0)
	case b <= 0:
		return a
	}
	return min(a, b)
}
