package trust

import (
	"encoding/json"
	"reflect"
	"testing"
)

// derivedRef is the reference time of the derived-signal tests: 2023-11-14T22:13:20Z.
const derivedRef = 1700000000

const day = 86400

// derivedClaims is a BindID user authenticated at derivedRef whose bindid_info and
// bindid_network_info hold exactly info and network (nil = claim absent).
func derivedClaims(info, network map[string]any) map[string]any {
	c := map[string]any{"sub": "s", "bindid_alias": "a", "auth_time": float64(derivedRef)}
	if info != nil {
		c["bindid_info"] = info
	}
	if network != nil {
		c["bindid_network_info"] = network
	}
	return c
}

func TestDerived(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		want   *Derived
	}{
		{
			// Hand-computed: account 365 days + 5 s old, device registered 12 days before,
			// first used with this app 10 days before, last login an hour ago.
			name: "returning device, year-old account",
			claims: derivedClaims(
				map[string]any{
					"capp_first_login_from_authenticating_device": float64(derivedRef - 10*day),
					"capp_last_login_from_authenticating_device":  float64(derivedRef - 3600),
					"capp_last_login": float64(derivedRef - 3600),
				},
				map[string]any{
					"user_registration_time":                  float64(derivedRef - 365*day - 5),
					"authenticating_device_registration_time": float64(derivedRef - 12*day),
				}),
			want: &Derived{
				ReferenceTime: derivedRef, NewDevice: ptr(false), AccountAgeDays: ptr(int64(365)),
				DeviceKnownSince: derivedRef - 12*day, DeviceAgeDays: ptr(int64(12)), DaysSinceLastLogin: ptr(int64(0)),
			},
		},
		{
			name: "first login from this device equals the last one: new device",
			claims: derivedClaims(map[string]any{
				"capp_first_login_from_authenticating_device": float64(derivedRef - 60),
				"capp_last_login_from_authenticating_device":  float64(derivedRef - 60),
				"capp_last_login": float64(derivedRef - 3*day - 1),
			}, nil),
			want: &Derived{
				ReferenceTime: derivedRef, NewDevice: ptr(true),
				DeviceKnownSince: derivedRef - 60, DeviceAgeDays: ptr(int64(0)), DaysSinceLastLogin: ptr(int64(3)),
			},
		},
		{
			name: "no first login from this device: new device, known from its registration",
			claims: derivedClaims(map[string]any{}, map[string]any{
				"authenticating_device_registration_time": float64(derivedRef - 40*day),
			}),
			want: &Derived{
				ReferenceTime: derivedRef, NewDevice: ptr(true),
				DeviceKnownSince: derivedRef - 40*day, DeviceAgeDays: ptr(int64(40)),
			},
		},
		{
			name: "first login from the device earlier than its registration: the earliest wins",
			claims: derivedClaims(map[string]any{
				"capp_first_login_from_authenticating_device": float64(derivedRef - 9*day),
			}, map[string]any{
				"authenticating_device_registration_time": float64(derivedRef - 2*day),
			}),
			want: &Derived{
				ReferenceTime: derivedRef, NewDevice: ptr(false), // first present, last absent: not equal
				DeviceKnownSince: derivedRef - 9*day, DeviceAgeDays: ptr(int64(9)),
			},
		},
		{
			name: "days are floored: one second short of 30 days is 29",
			claims: derivedClaims(map[string]any{
				"capp_last_login": float64(derivedRef - 30*day),
			}, map[string]any{
				"user_registration_time":                  float64(derivedRef - 30*day + 1),
				"authenticating_device_registration_time": float64(derivedRef - day + 1),
			}),
			want: &Derived{
				ReferenceTime: derivedRef, NewDevice: ptr(true), AccountAgeDays: ptr(int64(29)),
				DeviceKnownSince: derivedRef - day + 1, DeviceAgeDays: ptr(int64(0)), DaysSinceLastLogin: ptr(int64(30)),
			},
		},
		{
			name: "times equal to the reference are 0 days",
			claims: derivedClaims(map[string]any{
				"capp_last_login": float64(derivedRef),
			}, map[string]any{
				"user_registration_time":                  float64(derivedRef),
				"authenticating_device_registration_time": float64(derivedRef),
			}),
			want: &Derived{
				ReferenceTime: derivedRef, NewDevice: ptr(true), AccountAgeDays: ptr(int64(0)),
				DeviceKnownSince: derivedRef, DeviceAgeDays: ptr(int64(0)), DaysSinceLastLogin: ptr(int64(0)),
			},
		},
		{
			name: "times after the reference give no age",
			claims: derivedClaims(map[string]any{
				"capp_last_login": float64(derivedRef + 100),
			}, map[string]any{
				"user_registration_time":                  float64(derivedRef + 1),
				"authenticating_device_registration_time": float64(derivedRef + 5),
			}),
			want: &Derived{ReferenceTime: derivedRef, NewDevice: ptr(true), DeviceKnownSince: derivedRef + 5},
		},
		{
			name: "only bindid_network_info: no new-device signal",
			claims: derivedClaims(nil, map[string]any{
				"user_registration_time": float64(derivedRef - 2*day),
			}),
			want: &Derived{ReferenceTime: derivedRef, AccountAgeDays: ptr(int64(2))},
		},
		{
			name: "iat is the reference when auth_time is absent",
			claims: with(derivedClaims(nil, map[string]any{"user_registration_time": float64(derivedRef - 2*day)}),
				"auth_time", nil, "iat", float64(derivedRef+day)),
			want: &Derived{ReferenceTime: derivedRef + day, AccountAgeDays: ptr(int64(3))},
		},
		{
			name: "iat is the reference when auth_time is not a time",
			claims: with(derivedClaims(nil, map[string]any{"user_registration_time": float64(derivedRef - 2*day)}),
				"auth_time", "soon", "iat", float64(derivedRef+day)),
			want: &Derived{ReferenceTime: derivedRef + day, AccountAgeDays: ptr(int64(3))},
		},
		{
			name: "auth_time wins over iat",
			claims: with(derivedClaims(nil, map[string]any{"user_registration_time": float64(derivedRef - 2*day)}),
				"iat", float64(derivedRef+day)),
			want: &Derived{ReferenceTime: derivedRef, AccountAgeDays: ptr(int64(2))},
		},
		{
			name: "no reference time: no derived signals",
			claims: with(derivedClaims(map[string]any{}, map[string]any{"user_registration_time": float64(derivedRef)}),
				"auth_time", nil),
			want: nil,
		},
		{
			name:   "no BindID claims: no derived signals",
			claims: map[string]any{"sub": "s", "auth_time": float64(derivedRef), "iat": float64(derivedRef)},
			want:   nil,
		},
		{
			// The seed's times are from 2020: were the wall clock used, the ages would be years.
			name:   "seed 000: relative to auth_time, not to now",
			claims: bindIDKnownClaims(t),
			want:   seedDerived(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewProfile(tt.claims, bindIDOpts).Derived
			if !reflect.DeepEqual(got, tt.want) {
				gotJSON, _ := json.Marshal(got)
				wantJSON, _ := json.Marshal(tt.want)
				t.Errorf("NewProfile().Derived = %s, want %s", gotJSON, wantJSON)
			}
		})
	}
}

func TestDerivedHeaders(t *testing.T) {
	derivedNames := []string{HeaderNewDevice, HeaderAccountAgeDays, HeaderDeviceKnownSince, HeaderDeviceAgeDays, HeaderDaysSinceLastLogin}
	tests := []struct {
		name   string
		claims map[string]any
		want   []Header // the derived headers only, in emission order
	}{
		{
			name: "every signal",
			claims: derivedClaims(
				map[string]any{
					"capp_first_login_from_authenticating_device": float64(derivedRef - 10*day),
					"capp_last_login_from_authenticating_device":  float64(derivedRef - 10*day),
					"capp_last_login": float64(derivedRef - 7*day - 1),
				},
				map[string]any{
					"user_registration_time":                  float64(derivedRef - 400*day),
					"authenticating_device_registration_time": float64(derivedRef - 12*day),
				}),
			want: []Header{
				{"X-Trust-New-Device", "true"},
				{"X-Trust-Account-Age-Days", "400"},
				{"X-Trust-Device-Known-Since", "1698963200"}, // derivedRef - 12 days
				{"X-Trust-Device-Age-Days", "12"},
				{"X-Trust-Days-Since-Last-Login", "7"},
			},
		},
		{
			name: "after the reference: known-since without an age",
			claims: derivedClaims(map[string]any{
				"capp_first_login_from_authenticating_device": float64(derivedRef + 10),
				"capp_last_login_from_authenticating_device":  float64(derivedRef + 20),
			}, nil),
			want: []Header{
				{"X-Trust-New-Device", "false"},
				{"X-Trust-Device-Known-Since", "1700000010"},
			},
		},
		{
			name:   "no reference time",
			claims: with(bindIDKnownClaims(t), "auth_time", nil),
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, _ := NewProfile(tt.claims, bindIDOpts).Headers(Options{Standard: StandardAll})
			var got []Header
			for _, h := range hs {
				for _, n := range derivedNames {
					if h.Name == n {
						got = append(got, h)
					}
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("derived headers = %q, want %q", got, tt.want)
			}
		})
	}
}
