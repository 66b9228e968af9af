// Package config holds each binary's Config: its flags and their defaults in
// one RegisterFlags method, an environment overlay (every flag --foo-bar can be
// set as JETINFER_FOO_BAR), and a Validate method whose errors name the field.
//
// A flag given on the command line wins over the environment, which wins over
// the default.
package config
