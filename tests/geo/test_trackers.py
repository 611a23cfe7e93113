"""The GT06 and H02 decoders on their own: framing (pieces, several frames at once, noise, broken
frames), what each frame says, and the answers a GT06 device expects.

Frames and messages marked Traccar are copied from traccar/traccar, src/test/java/org/traccar/
protocol/Gt06ProtocolDecoderTest.java and H02ProtocolDecoderTest.java; where Traccar's test names
the expected position (H02) those values are asserted, elsewhere the values follow from the bytes by
the published layout (GT06: date and time a byte each, latitude and longitude in 1/30000 minute,
speed in km/h, course in the low ten bits of the status word). Frames marked layout are built here
from the GT06 protocol description with `gt06.encode`.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from geo.patrol import gt06, h02
from geo.patrol.filters import FLAG_INVALID

UTC = timezone.utc
RECEIVED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
# Traccar: frames of Gt06ProtocolDecoderTest.
LOGIN = "78780D01086471700328358100093F040D0A"
LOGIN_WITH_ZONE = "787811010863586038760942a0010000010aa4000d0a"
LOCATION_22 = "787822220F0C1D023305C9027AC8180C46586000140001CC00287D001F71000001000820860D0A"
LOCATION_12 = "7878241216040e102c22cf00915ffb04c6016300195a02d402283b00753f400571040001dda4880d0a"
LOCATION_12_INDIA = "787821121303120b2524c70138e363085b549003d43301940057d200cd52c000006aa1ca0d0a"
LOCATION_22_GRAZ = "78782222120616083817c5050cc8c801a819d600152400e8011dbf003332000000004862500d0a"
NOT_POSITIONED = "787822221106160a1016c60278019407c7783800040001940504700046fc01030100065f570d0a"
EMPTY_LOCATION = "787805120099abec0d0a"
ALARM_26 = "7878252612030C063816C3026C10540C38C9700144030901CC002866000EEE0C06040302000DA2DB0D0A"


def frames(*hexes: str) -> list[gt06.Frame]:
    found, rest, skipped = gt06.split(b"".join(bytes.fromhex(h) for h in hexes))
    assert rest == b"" and skipped == 0
    return found


def test_the_crc_is_crc_itu_as_every_traccar_frame_carries_it():
    for frame in (LOGIN, LOGIN_WITH_ZONE, LOCATION_22, LOCATION_12, LOCATION_12_INDIA, LOCATION_22_GRAZ,
                  NOT_POSITIONED, EMPTY_LOCATION, ALARM_26):
        raw = bytes.fromhex(frame)
        assert gt06.crc_itu(raw[2:-4]) == int.from_bytes(raw[-4:-2], "big"), frame


def test_login_is_acknowledged_with_its_serial():
    (frame,) = frames(LOGIN)
    message = gt06.decode(frame)
    assert (message.protocol, message.serial, message.imei, message.zone) == (0x01, 9, "864717003283581", None)
    # The protocol description's own example: the answer to a login with serial 1.
    assert gt06.ack(0x01, 1) == bytes.fromhex("787805010001D9DC0D0A")
    ack = gt06.ack(0x01, 9)
    assert ack[:6] == bytes.fromhex("787805010009") and ack[-2:] == b"\r\n"
    assert gt06.crc_itu(ack[2:-4]) == int.from_bytes(ack[-4:-2], "big")


def test_a_login_may_name_the_device_time_zone():
    (frame,) = frames(LOGIN_WITH_ZONE)
    message = gt06.decode(frame)
    assert (message.imei, message.zone, message.serial) == ("863586038760942", UTC, 0x010A)
    # layout: type 0x0001, then GMT+8 (800 in bits 15–4, east) and language 2.
    east8 = gt06.encode(0x01, bytes.fromhex("0864717003283581") + bytes.fromhex("0001") + (800 << 4 | 2).to_bytes(2, "big"), 3)
    assert gt06.decode(frames(east8.hex())[0]).zone == timezone(timedelta(hours=8))
    west530 = gt06.encode(0x01, bytes.fromhex("0864717003283581") + bytes.fromhex("0001") + (530 << 4 | 8).to_bytes(2, "big"), 4)
    assert gt06.decode(frames(west530.hex())[0]).zone == timezone(-timedelta(hours=5, minutes=30))


@pytest.mark.parametrize("frame, serial, ts, lat, lon, kmh, course, flags", [
    (LOCATION_22, 8, "2015-12-29T02:51:05", 0x027AC818, 0x0C465860, 0, 0, 0),
    (LOCATION_12, 0x01DD, "2022-04-14T16:44:34", -0x00915FFB, -0x04C60163, 0, 346, 0),       # south, west
    (LOCATION_12_INDIA, 0x006A, "2019-03-18T11:37:36", 0x0138E363, 0x085B5490, 3, 0x033, 0),
    (LOCATION_22_GRAZ, 0x0048, "2018-06-22T08:56:23", 0x050CC8C8, 0x01A819D6, 0, 0x124, 0),
    (NOT_POSITIONED, 0x0006, "2017-06-22T10:16:22", 0x02780194, 0x07C77838, 0, 0, FLAG_INVALID),
], ids=["0x22", "0x12-south-west", "0x12-india", "0x22-graz", "0x22-not-positioned"])
def test_locations(frame, serial, ts, lat, lon, kmh, course, flags):
    (f,) = frames(frame)
    message = gt06.decode(f)
    fix = message.fix
    assert message.serial == serial and message.heard is None
    assert fix.ts == datetime.fromisoformat(ts).replace(tzinfo=UTC)
    assert (fix.lat, fix.lon) == pytest.approx((lat / 1800000, lon / 1800000))
    assert (fix.speed, fix.heading, fix.flags) == (pytest.approx(kmh / 3.6), course, flags)


def test_decimal_degrees_of_a_location():
    fix = gt06.decode(frames(LOCATION_22)[0]).fix
    assert (round(fix.lat, 6), round(fix.lon, 6)) == (23.111693, 114.409298)


def test_an_empty_location_has_no_fix_but_is_a_known_frame():
    (f,) = frames(EMPTY_LOCATION)          # Traccar: verifyNull
    message = gt06.decode(f)
    assert (message.fix, message.heard, f.serial, f.protocol in gt06.ACKNOWLEDGED) == (None, None, 0x99, True)


def test_an_alarm_is_a_fix_and_a_report():
    message = gt06.decode(frames(ALARM_26)[0], received=RECEIVED)
    assert message.fix.ts == datetime(2018, 3, 12, 6, 56, 22, tzinfo=UTC) and message.fix.flags == FLAG_INVALID
    heard = message.heard
    assert (heard.kind, heard.ts, heard.battery, heard.details["code"]) == ("alarm", message.fix.ts, 100.0, 3)


def test_a_status_is_a_heartbeat_with_the_battery():
    # layout: terminal info (GPS tracking, charging, ignition), voltage level 4 of 6, GSM 3, alarm/language.
    frame = gt06.encode(0x13, bytes([0x46, 0x04, 0x03, 0x00, 0x02]), 0x0107)
    message = gt06.decode(frames(frame.hex())[0], received=RECEIVED)
    assert message.fix is None and message.serial == 0x0107
    assert (message.heard.kind, message.heard.ts, message.heard.battery) == ("heartbeat", RECEIVED, 66.7)
    assert message.heard.details == {"ignition": True, "charging": True, "gps": True, "gsm": 3}


def test_times_follow_the_zone_of_the_login():
    content = bytes([26, 5, 1, 20, 0, 0, 0xC9]) + (0x027AC818).to_bytes(4, "big") + (0x0C465860).to_bytes(4, "big") \
        + bytes([36]) + (0x1400 | 90).to_bytes(2, "big")
    frame = frames(gt06.encode(0x12, content, 1).hex())[0]
    assert gt06.decode(frame, timezone(timedelta(hours=8))).fix.ts == datetime(2026, 5, 1, 12, tzinfo=UTC)
    fix = gt06.decode(frame).fix
    assert (fix.ts, fix.speed, fix.heading) == (datetime(2026, 5, 1, 20, tzinfo=UTC), 10.0, 90)


def test_a_time_request_is_answered_in_utc():
    reply = gt06.time_reply(0x0A, datetime(2026, 5, 1, 20, 1, 2, tzinfo=timezone(timedelta(hours=8))))
    (frame,) = frames(reply.hex())
    assert (frame.protocol, frame.content, frame.serial) == (0x8A, bytes([26, 5, 1, 12, 1, 2]), 0x0A)


def test_frames_arriving_in_pieces_and_together():
    stream = bytes.fromhex(LOGIN + LOCATION_22 + EMPTY_LOCATION)
    buffer, got = b"", []
    for byte in stream:                       # one byte a read: nothing is decoded before it is whole
        found, buffer, skipped = gt06.split(buffer + bytes([byte]))
        assert skipped == 0
        got += found
    assert [f.protocol for f in got] == [0x01, 0x22, 0x12] and buffer == b""
    found, rest, _ = gt06.split(stream[:-3])
    assert [f.protocol for f in found] == [0x01, 0x22] and rest == bytes.fromhex(EMPTY_LOCATION)[:-3]


def test_noise_and_broken_frames_are_skipped():
    bad_crc = bytearray(bytes.fromhex(LOCATION_22))
    bad_crc[10] ^= 0xFF
    no_stop = bytes.fromhex(LOGIN)[:-2] + b"\x00\x00"
    stream = b"GET / HTTP/1.1\r\n" + bytes(bad_crc) + no_stop + bytes.fromhex(LOCATION_12) + b"\x78"
    found, rest, skipped = gt06.split(stream)
    assert [f.protocol for f in found] == [0x12]
    assert rest == b"\x78" and skipped == len(stream) - len(bytes.fromhex(LOCATION_12)) - 1


def test_frames_that_say_nothing_possible_are_malformed():
    with pytest.raises(gt06.Malformed):
        gt06.decode(frames(gt06.encode(0x12, bytes(18), 1).hex())[0])                 # month 0
    with pytest.raises(gt06.Malformed):
        gt06.decode(frames(gt06.encode(0x12, bytes.fromhex("0F0C1D023305C9"), 1).hex())[0])   # cut short
    with pytest.raises(gt06.Malformed):
        gt06.decode(frames(gt06.encode(0x01, b"\xff" * 8, 1).hex())[0])                # IMEI not BCD


# -- H02 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("message, device, ts, valid, lat, lon", [
    # Traccar: the three messages of H02ProtocolDecoderTest whose position the test names.
    ("*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#",
     "4210051415", "2015-12-22T16:45:49", True, 9.93978, -84.11178),
    ("*HQ,355488020119695,V1,050418,,2827.61232,N,07703.84822,E,0.00,0,031015,FFFEFBFF#",
     "355488020119695", "2015-10-03T05:04:18", False, 28.46021, 77.06414),
    ("*HQ,1451316409,V1,030149,A,-23-29.0095,S,-46-51.5852,W,2.4,065,070315,FFFFFFFF#",
     "1451316409", "2015-03-07T03:01:49", True, -23.48349, -46.85975),
], ids=["west", "no-validity", "dashed-degrees"])
def test_h02_positions_traccar_names(message, device, ts, valid, lat, lon):
    out = h02.decode(message, RECEIVED)
    assert (out.device, out.command, out.heard) == (device, "V1", None)
    assert out.fix.ts == datetime.fromisoformat(ts).replace(tzinfo=UTC)
    assert (out.fix.flags == 0) is valid
    assert (round(out.fix.lat, 5), round(out.fix.lon, 5)) == (lat, lon)


@pytest.mark.parametrize("message, ts, lat, lon, knots, course", [
    # Traccar: messages of H02ProtocolDecoderTest (verifyPosition); values as the message writes them.
    ("*HQ,4210209006,V1,054048,A,2828.2297,N,07733.4332,E,000.5,047,4,080918,EEE7FBDF,4261193,0#",
     "2018-09-08T05:40:48", 28 + 28.2297 / 60, 77 + 33.4332 / 60, 0.5, 47),
    ("*HQ,4209951296,V19,214452,A,5201.0178,N,01830.5029,E,000.00,000,200417,,195.63.13.195,89480610500392633029,"
     "BFFFFBFF#", "2017-04-20T21:44:52", 52 + 1.0178 / 60, 18 + 30.5029 / 60, 0, 0),
    ("*HQ,353505221264507,VI1,075146,0,5238.25900,N,00507.33429,E,0.54,0,250917,FFFFFFFF,cc,28,  db,d75b#",
     "2017-09-25T07:51:46", 52 + 38.259 / 60, 5 + 7.33429 / 60, 0.54, 0),
    ("*TH,2020916012,V4,S17,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#",
     "2002-09-22T05:03:16", 22 + 12.8745 / 60, 113 + 46.6574 / 60, 14.28, 28),
    ("*HQ,353588020068342,V1,062840,A,5241.1249,N,954.9490,E,0.00,0.00,231013,ffffffff,000106,000002,000203,004c87,24#",
     "2013-10-23T06:28:40", 52 + 41.1249 / 60, 9 + 54.949 / 60, 0, 0),
    ("*HQ,354188045498669,V1,195200,A,701.8915,S,3450.3399,W,0.00,205.70,050213,ffffffff,000243,000000,000000#",
     "2013-02-05T19:52:00", -(7 + 1.8915 / 60), -(34 + 50.3399 / 60), 0, 205.7),
], ids=["extra-field", "V19", "VI1", "V4", "short-longitude", "short-latitude"])
def test_h02_position_commands(message, ts, lat, lon, knots, course):
    fix = h02.decode(message, RECEIVED).fix
    assert fix.ts == datetime.fromisoformat(ts).replace(tzinfo=UTC)
    assert (fix.lat, fix.lon, fix.speed, fix.heading) == pytest.approx((lat, lon, knots * 0.514444, course))


def test_h02_reports_without_a_position():
    # Traccar: V1 without coordinates and XT are verifyNull there; here they say the device is alive.
    for message in ("*HQ,353505510948929,V1,,V,,N,,E,0.00,0,,FFFFF7FF,f0,a,11a0,c0c6#",
                    "*HQ,353588020068342,V1,000000,V,0.0000,0,0.0000,0,0.00,0.00,000000,ffffffff,000106,000002,"
                    "000203,004c87,16#", "*HQ,356327080425330,XT,1,100#", "*HQ,1600068860,LINK,112137,20,8,67,0,0,081116,FFFFFBFF#"):
        out = h02.decode(message, RECEIVED)
        assert out.fix is None and (out.heard.kind, out.heard.ts) == ("heartbeat", RECEIVED), message
    # Traccar: an NBR message (verifyAttributes): the cell towers the device hears.
    out = h02.decode("*HQ,1451316451,NBR,112315,724,10,2,2,215,2135,123,215,2131,121,011215,FFFFFFFF#", RECEIVED)
    assert (out.heard.kind, out.heard.ts) == ("cells", datetime(2015, 12, 1, 11, 23, 15, tzinfo=UTC))
    assert out.heard.details["cell"] == [{"mcc": 724, "mnc": 10, "lac": 215, "cid": 2135, "signal": 123},
                                         {"mcc": 724, "mnc": 10, "lac": 215, "cid": 2131, "signal": 121}]


def test_h02_without_a_time_is_stored_when_it_arrived():
    # Traccar: verifyPosition; no time and no date, and `V`: kept as no fix, at the time it came.
    fix = h02.decode("*HQ,353505220873067,V1,,V,4605.75732,N,01430.73863,E,0.00,0,,FFFFFFEF,125,194,  64,d3#",
                     RECEIVED).fix
    assert (fix.ts, fix.flags) == (RECEIVED, FLAG_INVALID)


def test_h02_framing():
    one = b"*TH,2020916012,V1,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#\r\n"   # Traccar
    two = b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#"
    buffer, got = b"", []
    for k in range(0, len(one + two), 7):     # seven bytes a read
        found, buffer, _ = h02.split(buffer + (one + two)[k:k + 7])
        got += found
    assert got == [one.decode().strip(), two.decode()] and buffer == b""
    found, rest, skipped = h02.split(b"noise*HQ,123,V1,cut off" + two + b"*HQ,9")
    assert found == [two.decode()] and rest == b"*HQ,9" and skipped == len(b"noise*HQ,123,V1,cut off")
    found, rest, skipped = h02.split(b"*" + b"x" * (h02.MAX_MESSAGE + 1))
    assert (found, rest) == ([], b"")
    with pytest.raises(h02.Malformed):
        h02.decode("*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,321315,FFFFFBFF#")   # no 32nd
    with pytest.raises(h02.Malformed):
        h02.decode("*#")
