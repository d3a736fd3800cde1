package component

import (
	"context"

	"connectrpc.com/connect"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"google.golang.org/protobuf/types/known/structpb"
)

// NewRemote returns a component of type typ whose calls go to name on a
// ComponentService client: how the daemon drives a component a module
// serves. Close is a no-op; the owner of the remote end removes it there.
func NewRemote(client controlv1connect.ComponentServiceClient, typ Type, name string) Component {
	r := remote{c: client, name: name}
	switch typ {
	case TypeMotor:
		return remoteMotor{r}
	case TypeBase:
		return remoteBase{r}
	case TypeSensor:
		return remoteSensor{r}
	case TypeCamera:
		return remoteCamera{r}
	}
	return r
}

type remote struct {
	c    controlv1connect.ComponentServiceClient
	name string
}

func mapOf(s *structpb.Struct) map[string]any {
	if s == nil {
		return nil
	}
	return s.AsMap()
}

func (r remote) Status(ctx context.Context) (map[string]any, error) {
	res, err := r.c.GetStatus(ctx, connect.NewRequest(&controlv1.GetStatusRequest{Name: r.name}))
	if err != nil {
		return nil, err
	}
	return mapOf(res.Msg.GetStatus()), nil
}

func (r remote) DoCommand(ctx context.Context, cmd map[string]any) (map[string]any, error) {
	pb, err := toStruct(cmd)
	if err != nil {
		return nil, err
	}
	res, err := r.c.DoCommand(ctx, connect.NewRequest(&controlv1.DoCommandRequest{Name: r.name, Command: pb}))
	if err != nil {
		return nil, err
	}
	return mapOf(res.Msg.GetResult()), nil
}

func (r remote) Stop(ctx context.Context) error {
	_, err := r.c.Stop(ctx, connect.NewRequest(&controlv1.StopRequest{Name: r.name}))
	return err
}

func (r remote) Close(context.Context) error { return nil }

type remoteMotor struct{ remote }

func (r remoteMotor) SetPower(ctx context.Context, power float64) error {
	_, err := r.c.MotorSetPower(ctx, connect.NewRequest(&controlv1.MotorSetPowerRequest{Name: r.name, Power: power}))
	return err
}

func (r remoteMotor) GoFor(ctx context.Context, rpm, revolutions float64) error {
	_, err := r.c.MotorGoFor(ctx, connect.NewRequest(&controlv1.MotorGoForRequest{Name: r.name, Rpm: rpm, Revolutions: revolutions}))
	return err
}

func (r remoteMotor) IsMoving(ctx context.Context) (bool, error) {
	res, err := r.c.MotorIsMoving(ctx, connect.NewRequest(&controlv1.MotorIsMovingRequest{Name: r.name}))
	if err != nil {
		return false, err
	}
	return res.Msg.GetMoving(), nil
}

type remoteBase struct{ remote }

func pbVec(v Vector) *controlv1.Vector3 { return &controlv1.Vector3{X: v.X, Y: v.Y, Z: v.Z} }

func (r remoteBase) SetVelocity(ctx context.Context, linear, angular Vector) error {
	_, err := r.c.BaseSetVelocity(ctx, connect.NewRequest(&controlv1.BaseSetVelocityRequest{Name: r.name, Linear: pbVec(linear), Angular: pbVec(angular)}))
	return err
}

type remoteSensor struct{ remote }

func (r remoteSensor) Readings(ctx context.Context) (map[string]any, error) {
	res, err := r.c.SensorReadings(ctx, connect.NewRequest(&controlv1.SensorReadingsRequest{Name: r.name}))
	if err != nil {
		return nil, err
	}
	return mapOf(res.Msg.GetReadings()), nil
}

type remoteCamera struct{ remote }

func (r remoteCamera) Image(ctx context.Context, mime string) ([]byte, string, error) {
	res, err := r.c.CameraImage(ctx, connect.NewRequest(&controlv1.CameraImageRequest{Name: r.name, MimeType: mime}))
	if err != nil {
		return nil, "", err
	}
	return res.Msg.GetImage(), res.Msg.GetMimeType(), nil
}
