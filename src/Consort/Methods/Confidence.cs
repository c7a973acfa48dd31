using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>Confidence of an answer from its tokens' log-probabilities.</summary>
public static class Confidence
{
    /// <summary>Valid measure names.</summary>
    public static readonly string[] Measures = ["mean", "min", "first", "sum"];

    /// <summary>
    /// "mean": geometric-mean token probability, exp(mean logprob); "min": the least likely token's probability;
    /// "first": the first token's probability; "sum": total log-probability (favours short answers).
    /// Null when the response has no logprobs.
    /// </summary>
    public static double? Of(ChatResponse response, string measure = "mean")
    {
        var lp = response.GetTokenLogprobs();
        if (lp is null) return null;
        if (lp.Length == 0) return measure == "sum" ? 0 : 1;
        return measure switch
        {
            "mean" => Math.Exp(lp.Average(x => (double)x)),
            "min" => Math.Exp(lp.Min()),
            "first" => Math.Exp(lp[0]),
            "sum" => lp.Sum(x => (double)x),
            _ => throw new ConfigException($"unknown confidence measure '{measure}'; valid: {string.Join(", ", Measures)}"),
        };
    }

    /// <summary>Checks a measure name.</summary>
    public static string Validate(string measure, string method) =>
        Measures.Contains(measure) ? measure : throw new ConfigException($"method '{method}': unknown confidence '{measure}'; valid: {string.Join(", ", Measures)}");
}
