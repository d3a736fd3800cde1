package component

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"google.golang.org/protobuf/types/known/structpb"
)

// Finder looks a running component up by name.
type Finder interface {
	// Component returns the component and its type, or an error that says
	// why there is none (not configured, failed to start).
	Component(name string) (Component, Type, error)
	// Resources reports the state of every resource.
	Resources() []*controlv1.ResourceStatus
}

// ErrNotFound is what a Finder wraps when no component has the name.
var ErrNotFound = errors.New("no such component")

// Server implements ComponentService over a Finder.
type Server struct {
	find Finder
}

var _ controlv1connect.ComponentServiceHandler = (*Server)(nil)

// NewServer returns a ComponentService handler over f.
func NewServer(f Finder) *Server { return &Server{find: f} }

func (s *Server) lookup(name string) (Component, Type, error) {
	c, typ, err := s.find.Component(name)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, 0, connect.NewError(connect.CodeNotFound, err)
		}
		return nil, 0, connect.NewError(connect.CodeUnavailable, err)
	}
	return c, typ, nil
}

func wrongType(name string, typ Type, want string) error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("component %q is a %s, not a %s", name, typeName(typ), want))
}

func typeName(t Type) string {
	switch t {
	case TypeMotor:
		return "motor"
	case TypeBase:
		return "base"
	case TypeSensor:
		return "sensor"
	case TypeCamera:
		return "camera"
	case TypeGeneric:
		return "generic component"
	}
	return t.String()
}

// callErr keeps a connect error's code (a module's answer passes through)
// and marks anything else as the component's own failure.
func callErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("%s %q: %w", op, name, err))
	}
	return connect.NewError(connect.CodeUnknown, fmt.Errorf("%s %q: %w", op, name, err))
}

func toStruct(m map[string]any) (*structpb.Struct, error) {
	if m == nil {
		return nil, nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("encode result: %w", err))
	}
	return s, nil
}

// ListResources reports every resource.
func (s *Server) ListResources(context.Context, *connect.Request[controlv1.ListResourcesRequest]) (*connect.Response[controlv1.ListResourcesResponse], error) {
	return connect.NewResponse(&controlv1.ListResourcesResponse{Resources: s.find.Resources()}), nil
}

// GetStatus returns a component's status.
func (s *Server) GetStatus(ctx context.Context, req *connect.Request[controlv1.GetStatusRequest]) (*connect.Response[controlv1.GetStatusResponse], error) {
	c, _, err := s.lookup(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, callErr("status of", req.Msg.GetName(), err)
	}
	pb, err := toStruct(st)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlv1.GetStatusResponse{Status: pb}), nil
}

// DoCommand runs a model-specific command.
func (s *Server) DoCommand(ctx context.Context, req *connect.Request[controlv1.DoCommandRequest]) (*connect.Response[controlv1.DoCommandResponse], error) {
	c, _, err := s.lookup(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	res, err := c.DoCommand(ctx, req.Msg.GetCommand().AsMap())
	if err != nil {
		return nil, callErr("command to", req.Msg.GetName(), err)
	}
	pb, err := toStruct(res)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlv1.DoCommandResponse{Result: pb}), nil
}

// Stop stops a component.
func (s *Server) Stop(ctx context.Context, req *connect.Request[controlv1.StopRequest]) (*connect.Response[controlv1.StopResponse], error) {
	c, _, err := s.lookup(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	if err := c.Stop(ctx); err != nil {
		return nil, callErr("stop", req.Msg.GetName(), err)
	}
	return connect.NewResponse(&controlv1.StopResponse{}), nil
}

func (s *Server) motor(name string) (Motor, error) {
	c, typ, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	m, ok := c.(Motor)
	if !ok || typ != TypeMotor {
		return nil, wrongType(name, typ, "motor")
	}
	return m, nil
}

// MotorSetPower sets a motor's power.
func (s *Server) MotorSetPower(ctx context.Context, req *connect.Request[controlv1.MotorSetPowerRequest]) (*connect.Response[controlv1.MotorSetPowerResponse], error) {
	m, err := s.motor(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	if p := req.Msg.GetPower(); !(p >= -1 && p <= 1) {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("power %v: want -1 to 1", p))
	}
	if err := m.SetPower(ctx, req.Msg.GetPower()); err != nil {
		return nil, callErr("set power of", req.Msg.GetName(), err)
	}
	return connect.NewResponse(&controlv1.MotorSetPowerResponse{}), nil
}

// MotorGoFor turns a motor.
func (s *Server) MotorGoFor(ctx context.Context, req *connect.Request[controlv1.MotorGoForRequest]) (*connect.Response[controlv1.MotorGoForResponse], error) {
	m, err := s.motor(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	if err := m.GoFor(ctx, req.Msg.GetRpm(), req.Msg.GetRevolutions()); err != nil {
		return nil, callErr("go for on", req.Msg.GetName(), err)
	}
	return connect.NewResponse(&controlv1.MotorGoForResponse{}), nil
}

// MotorIsMoving reports whether a motor moves.
func (s *Server) MotorIsMoving(ctx context.Context, req *connect.Request[controlv1.MotorIsMovingRequest]) (*connect.Response[controlv1.MotorIsMovingResponse], error) {
	m, err := s.motor(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	moving, err := m.IsMoving(ctx)
	if err != nil {
		return nil, callErr("is moving of", req.Msg.GetName(), err)
	}
	return connect.NewResponse(&controlv1.MotorIsMovingResponse{Moving: moving}), nil
}

func vec(v *controlv1.Vector3) Vector {
	return Vector{X: v.GetX(), Y: v.GetY(), Z: v.GetZ()}
}

// BaseSetVelocity sets a base's velocity.
func (s *Server) BaseSetVelocity(ctx context.Context, req *connect.Request[controlv1.BaseSetVelocityRequest]) (*connect.Response[controlv1.BaseSetVelocityResponse], error) {
	c, typ, err := s.lookup(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	b, ok := c.(Base)
	if !ok || typ != TypeBase {
		return nil, wrongType(req.Msg.GetName(), typ, "base")
	}
	if err := b.SetVelocity(ctx, vec(req.Msg.GetLinear()), vec(req.Msg.GetAngular())); err != nil {
		return nil, callErr("set velocity of", req.Msg.GetName(), err)
	}
	return connect.NewResponse(&controlv1.BaseSetVelocityResponse{}), nil
}

// SensorReadings returns a sensor's readings.
func (s *Server) SensorReadings(ctx context.Context, req *connect.Request[controlv1.SensorReadingsRequest]) (*connect.Response[controlv1.SensorReadingsResponse], error) {
	c, typ, err := s.lookup(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	sn, ok := c.(Sensor)
	if !ok || typ != TypeSensor {
		return nil, wrongType(req.Msg.GetName(), typ, "sensor")
	}
	r, err := sn.Readings(ctx)
	if err != nil {
		return nil, callErr("readings of", req.Msg.GetName(), err)
	}
	pb, err := toStruct(r)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlv1.SensorReadingsResponse{Readings: pb}), nil
}

// CameraImage returns an image.
func (s *Server) CameraImage(ctx context.Context, req *connect.Request[controlv1.CameraImageRequest]) (*connect.Response[controlv1.CameraImageResponse], error) {
	c, typ, err := s.lookup(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	cam, ok := c.(Camera)
	if !ok || typ != TypeCamera {
		return nil, wrongType(req.Msg.GetName(), typ, "camera")
	}
	img, mime, err := cam.Image(ctx, req.Msg.GetMimeType())
	if err != nil {
		return nil, callErr("image from", req.Msg.GetName(), err)
	}
	return connect.NewResponse(&controlv1.CameraImageResponse{Image: img, MimeType: mime}), nil
}
