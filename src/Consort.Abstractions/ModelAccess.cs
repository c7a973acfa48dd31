namespace Consort;

/// <summary>
/// What a model lets a collaboration method reach. Methods declare what they need; a config that
/// asks a model for more than it offers is rejected before any work starts.
/// </summary>
[Flags]
public enum ModelAccess
{
    /// <summary>Nothing.</summary>
    None = 0,
    /// <summary>Chat text in, text out (<see cref="Microsoft.Extensions.AI.IChatClient"/>).</summary>
    Text = 1,
    /// <summary>Only the top-k log-probabilities of each next token (typical of HTTP endpoints).</summary>
    TopKLogprobs = 2,
    /// <summary>The full next-token distribution over the vocabulary (local inference).</summary>
    FullLogits = 4,
    /// <summary>The parameters themselves (a model file on disk).</summary>
    Weights = 8,
    /// <summary>Either kind of token distribution.</summary>
    Tokens = TopKLogprobs | FullLogits,
}

/// <summary>Extensions for <see cref="ModelAccess"/>.</summary>
public static class ModelAccessExtensions
{
    /// <summary>True when <paramref name="offered"/> satisfies <paramref name="required"/>.
    /// Full logits satisfy a top-k requirement.</summary>
    public static bool Satisfies(this ModelAccess offered, ModelAccess required)
    {
        var effective = offered;
        if (effective.HasFlag(ModelAccess.FullLogits)) effective |= ModelAccess.TopKLogprobs;
        // "Tokens" means any token access.
        if (required.HasFlag(ModelAccess.TopKLogprobs) && required.HasFlag(ModelAccess.FullLogits))
        {
            if ((effective & ModelAccess.Tokens) == 0) return false;
            required &= ~ModelAccess.Tokens;
        }
        return (effective & required) == required;
    }

    /// <summary>Names the access in words.</summary>
    public static string Describe(this ModelAccess access)
    {
        var parts = new List<string>();
        if (access.HasFlag(ModelAccess.Text)) parts.Add("chat text");
        if ((access & ModelAccess.Tokens) == ModelAccess.Tokens) parts.Add("token distributions (full logits or top-k logprobs)");
        else if (access.HasFlag(ModelAccess.FullLogits)) parts.Add("full logits");
        else if (access.HasFlag(ModelAccess.TopKLogprobs)) parts.Add("top-k logprobs");
        if (access.HasFlag(ModelAccess.Weights)) parts.Add("weights");
        return parts.Count == 0 ? "nothing" : string.Join(" + ", parts);
    }
}
