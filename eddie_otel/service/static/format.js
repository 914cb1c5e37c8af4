// The status page's number formats, apart from the page so that they can be checked on their own.
// Every format rounds first and picks its unit from the rounded value, so that 0.0009999 s is
// "1.00 ms" (not "1000 µs") and 59.999 s is "1 min" (not "60.00 s").
"use strict";
var EddieFormat = (function () {
  var MICRO = 1e-6;
  var MILLI = 1e-3;
  var MINUTE = 60;
  var HOUR = 3600;

  // `value` with `digits` significant digits, never in exponent notation; whole numbers of
  // `digits` digits or more are shown whole.
  function significant(value, digits) {
    if (Math.abs(value) >= Math.pow(10, digits - 1)) return value.toFixed(0);
    return value.toPrecision(digits);
  }

  // Digits after the decimal point that say nothing: "2.50" → "2.5", "3.00" → "3"; never a whole number's zeros.
  function trimmed(text) {
    return text.indexOf(".") < 0 ? text : text.replace(/0+$/, "").replace(/\.$/, "");
  }

  // A duration in seconds: three significant digits below a second (µs, ms), hundredths of a
  // second up to a minute, then whole seconds in minutes and whole minutes in hours.
  function duration(value) {
    if (typeof value !== "number" || !isFinite(value)) return "—";
    if (value < 0) return "−" + duration(-value);
    if (value === 0) return "0 s";
    var rounded = Number(value.toPrecision(3));
    if (rounded < MILLI) return significant(rounded / MICRO, 3) + " µs";
    if (rounded < 1) return significant(rounded / MILLI, 3) + " ms";
    if (Number(value.toFixed(2)) < MINUTE) return value.toFixed(2) + " s";
    var seconds = Math.round(value);
    if (seconds < HOUR) {
      var rest = seconds % MINUTE;
      return Math.floor(seconds / MINUTE) + " min" + (rest ? " " + rest + " s" : "");
    }
    var minutes = Math.round(value / MINUTE);
    var left = minutes % 60;
    return Math.floor(minutes / 60) + " h" + (left ? " " + left + " min" : "");
  }

  // A share as a percentage with one decimal; only exactly 0 and 1 read as "0.0%" and "100.0%".
  function percent(value) {
    if (typeof value !== "number" || !isFinite(value)) return "—";
    var shown = value * 100;
    var text = shown.toFixed(1);
    if (value > 0 && value < 1 && text === "100.0") text = "99.9";
    if (value > 0 && text === "0.0") text = "< 0.1";
    return text + "%";
  }

  // A count or any other plain number: whole numbers as they are, others with three significant digits.
  function plain(value) {
    if (typeof value !== "number" || !isFinite(value)) return "—";
    if (Number.isInteger(value)) return String(value);
    if (value !== 0 && Math.abs(value) < 0.001) return (value < 0 ? "> −" : "< ") + "0.001";
    return trimmed(significant(value, 3));
  }

  // A ratio such as the agent balance: two decimals up to 100, whole above.
  function ratio(value) {
    if (typeof value !== "number" || !isFinite(value)) return "—";
    return (Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2)) + "×";
  }

  // A rate per second shown per minute: whole from 10 up, otherwise up to three significant digits.
  function perMinute(rate) {
    if (typeof rate !== "number" || !isFinite(rate)) return "—";
    var value = rate * 60;
    if (value === 0) return "0";
    if (value >= 10) return value.toFixed(0);
    if (value < 0.001) return "< 0.001";
    return trimmed(value.toPrecision(3));
  }

  // Seconds shown in hours (chunk-hours): three significant digits, whole from 1000 h up; "0 h" only for 0.
  function hours(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "—";
    if (seconds < 0) return "−" + hours(-seconds);
    if (seconds === 0) return "0 h";
    var value = seconds / HOUR;
    if (Number(value.toPrecision(3)) < 0.001) return "< 0.001 h";
    return trimmed(significant(value, 3)) + " h";
  }

  // US dollars: cents from $1 up, three significant digits (at least two decimals) below; "< $0.0001" for less.
  function usd(value) {
    if (typeof value !== "number" || !isFinite(value)) return "—";
    if (value < 0) return "−" + usd(-value);
    if (value === 0) return "$0.00";
    var rounded = Number(value.toPrecision(3));
    if (rounded < 0.0001) return "< $0.0001";
    if (rounded >= 1) return "$" + value.toFixed(2);
    // "0.500" → "0.50", "0.0100" → "0.01": zeros past the cents say nothing.
    return "$" + rounded.toPrecision(3).replace(/(\.\d\d\d*?)0+$/, "$1");
  }

  return {
    duration: duration,
    percent: percent,
    plain: plain,
    ratio: ratio,
    perMinute: perMinute,
    hours: hours,
    usd: usd,
  };
})();
