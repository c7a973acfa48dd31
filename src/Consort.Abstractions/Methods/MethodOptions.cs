using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>
/// Declares a hyperparameter on a method's options class. The config key is the snake_case form of the
/// property name unless <see cref="Name"/> says otherwise; the default is the property's initial value (written
/// once, in the options class). Ranges and allowed values are checked for every run of a config before any work.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class OptionAttribute(string description) : Attribute
{
    /// <summary>What the option does (shown by <c>consort methods</c> and in the docs).</summary>
    public string Description { get; } = description;
    /// <summary>Config key (default: the property name in snake_case).</summary>
    public string? Name { get; init; }
    /// <summary>Other accepted keys, e.g. MoCo's names.</summary>
    public string[] Aliases { get; init; } = [];
    /// <summary>Smallest allowed value (numbers, and each element of number lists); NaN = unbounded.</summary>
    public double Min { get; init; } = double.NaN;
    /// <summary>Largest allowed value; NaN = unbounded.</summary>
    public double Max { get; init; } = double.NaN;
    /// <summary>True when <see cref="Min"/> itself is not allowed (e.g. top_p in (0, 1]).</summary>
    public bool MinExclusive { get; init; }
    /// <summary>Allowed values of a string option (case-insensitive), when it is a closed set.</summary>
    public string[]? Allowed { get; init; }
    /// <summary>How to show the default when it is computed at run time (e.g. "run seed", "best member on dev").</summary>
    public string? DefaultText { get; init; }
    /// <summary>Accepted for compatibility (e.g. MoCo's batch_size) but without effect.</summary>
    public bool Ignored { get; init; }
}

/// <summary>Names an enum member's config spelling (and other accepted spellings).</summary>
[AttributeUsage(AttributeTargets.Field)]
public sealed class OptionValueAttribute(string name, params string[] aliases) : Attribute
{
    /// <summary>The config spelling.</summary>
    public string Name { get; } = name;
    /// <summary>Other accepted spellings.</summary>
    public string[] Aliases { get; } = aliases;
}

/// <summary>
/// Base of every method's options: the generation settings every method accepts (MoCo's names included).
/// Settings given here override the caller's (e.g. a task's defaults); settings left null leave the caller's alone.
/// Subclasses add their own hyperparameters as properties with <see cref="OptionAttribute"/> and initial values.
/// </summary>
public class MethodOptions
{
    /// <summary>Default output length when neither the method nor the caller sets one.</summary>
    public const int DefaultMaxTokens = 256;

    /// <summary>Most tokens a member generates per call.</summary>
    [Option("Most tokens a member generates per call (default: the caller's, else 256).", Aliases = ["max_response_length", "max_new_tokens"],
        Min = 1, Max = Limits.MaxGeneratedTokens, DefaultText = "caller's, else 256")]
    public int? MaxTokens { get; set; }

    /// <summary>Sampling temperature of member calls.</summary>
    [Option("Sampling temperature of member calls (0 = greedy).", Min = 0, Max = 100, DefaultText = "caller's, else 0")]
    public float? Temperature { get; set; }

    /// <summary>Nucleus sampling threshold.</summary>
    [Option("Nucleus sampling threshold of member calls.", Min = 0, MinExclusive = true, Max = 1, DefaultText = "caller's, else 1")]
    public float? TopP { get; set; }

    /// <summary>Top-k sampling cut (0 = off).</summary>
    [Option("Top-k sampling of member calls (0 = off).", Min = 0, Max = 1 << 20, DefaultText = "caller's, else off")]
    public int? TopK { get; set; }

    /// <summary>MoCo's batching knob; Consort batches and bounds concurrency itself.</summary>
    [Option("MoCo's per-GPU batch size: accepted, no effect (Consort batches concurrent requests itself).", Ignored = true, Min = 0, DefaultText = "-")]
    public int? BatchSize { get; set; }

    /// <summary>Options for a member call: a copy of the caller's with this method's explicit settings applied.</summary>
    public ChatOptions Apply(ChatOptions? caller, int? seed = null)
    {
        var o = caller?.Clone() ?? new ChatOptions();
        o.MaxOutputTokens = MaxTokens ?? o.MaxOutputTokens ?? DefaultMaxTokens;
        o.Temperature = Temperature ?? o.Temperature;
        if (TopP is { } p) o.TopP = p;
        if (TopK is { } k) o.TopK = k > 0 ? k : null;
        if (seed is not null) o.Seed = seed;
        return o;
    }
}
